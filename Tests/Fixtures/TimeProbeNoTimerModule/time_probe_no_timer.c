#define PROBE_NO_TIMER 1
#include "../TimeProbeModule/time_probe.c"
