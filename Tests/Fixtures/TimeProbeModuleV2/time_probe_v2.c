#define PROBE_VERSION "2"
#include "../TimeProbeModule/time_probe.c"
