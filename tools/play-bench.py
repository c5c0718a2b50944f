#!/usr/bin/env python3
"""Alternating rounds of `loadtest` against gameserver variants, with a
plain blocking client measuring the server directly at the same time (the
truth the tool's numbers are checked against), then the medians.

Per run: the tool's throughput and latency percentiles (open loop: from the
due time) and its own send lag; the direct client's round trips (MOVE in a
room of its own, one at a time every 5 ms, from the tool's first progress
line to the one a second before its end); the server's CPU over that window (utime+stime from
/proc/PID/stat), and the tool's. Every round runs every (variant, tool) pair
once, in order, after waiting for a quiet machine.

    python3 tools/play-bench.py --rounds 5 \\
        --loadtest "play --clients 10000 --members 16 --rate 10000 --duration 10" \\
        --variant "default=" --variant "spin=--busy-poll 50"

A variant is NAME=EXTRA-GAMESERVER-ARGS (leading KEY=VALUE words go into the
server's environment; a word @PATH runs another gameserver binary, e.g. a
copy of the one before a change, kept beside libGameLogic.so). A tool is NAME=LOADTEST-BINARY [EXTRA-ARGS]; the
default is the release build. Run it under the shared lock, it is a
benchmark: flock -o /tmp/hotswap-build.lock python3 tools/play-bench.py ...
Needs a release build (swift build -c release)."""
import json, os, re, shlex, statistics, subprocess, sys, tempfile, threading, time

from benchlib import ROOT, arg_parser, connect, cpu_seconds, percentile, raise_nofile, wait_quiet

ap = arg_parser(__doc__)
ap.add_argument('--rounds', type=int, default=3)
ap.add_argument('--loadtest', required=True, help='loadtest arguments (not --port or --json)')
ap.add_argument('--variant', action='append', default=[], help='NAME=[KEY=VALUE ...] extra server args')
ap.add_argument('--tool', action='append', default=[], help='NAME=LOADTEST-BINARY [extra args]')
ap.add_argument('--server', default=os.path.join(ROOT, '.build', 'release', 'gameserver'))
ap.add_argument('--probe-interval', type=float, default=0.005)
ap.add_argument('--probe-room', help="the direct client's room (default: one of its own; ltplay3 is one of "
                "loadtest play's, where its MOVEs fan out like the tool's)")
ap.add_argument('--probe-after', type=float, help='start the direct client this many seconds after the tool '
                '(for a tool whose progress lines do not reach a pipe as they happen: the one before this branch)')
args = ap.parse_args()

# 10,000 connections need the hard limit (the children inherit it).
raise_nofile()


class Probe(threading.Thread):
    """A player in a room of its own (or --probe-room): MOVE E, MOVE W, ...
    one at a time, events passed over."""

    def __init__(self, port, name):
        super().__init__(daemon=True)
        self.sock = connect(port, nodelay=True)
        self.file = self.sock.makefile('rb')
        self.call(f'LOGIN {name}'); self.call(f'JOIN {args.probe_room or name}')
        self.go = threading.Event(); self.stop = threading.Event(); self.samples = []

    def call(self, line):
        self.sock.sendall(line.encode() + b'\r\n')
        while True:
            reply = self.file.readline()
            if not reply.startswith(b'>'):
                return reply

    def run(self):
        self.go.wait()
        step = 0
        while not self.stop.is_set():
            started = time.perf_counter_ns()
            self.call('MOVE E' if step % 2 == 0 else 'MOVE W')
            self.samples.append((time.perf_counter_ns() - started) / 1000)
            step += 1
            time.sleep(args.probe_interval)
        self.sock.close()


def lag_histogram(metrics_port):
    """hotswap_timer_lag_seconds's cumulative buckets and the skipped-tick
    count, scraped from the server's metrics port."""
    import urllib.request
    try:
        text = urllib.request.urlopen(f'http://127.0.0.1:{metrics_port}/metrics', timeout=5).read().decode()
    except OSError:
        return None
    buckets, skipped = {}, 0
    for line in text.splitlines():
        match = re.match(r'hotswap_timer_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if match:
            buckets[float(match.group(1))] = float(match.group(2))
        if line.startswith('hotswap_ticks_skipped_total '):
            skipped = float(line.split()[1])
    return buckets, skipped


def lag_summary(before, after):
    """Over the measured window: the bucket bound that holds 99% of the
    fires (timers and ticks), how many fired, and the ticks skipped."""
    if not before or not after or not after[0]:
        return dict(lag_p99_ms='-', fires=0, skipped=0)
    diff = {bound: after[0][bound] - before[0].get(bound, 0) for bound in after[0]}
    total = diff.get(float('inf'), 0)
    bound = next((b for b in sorted(diff) if total and diff[b] >= 0.99 * total), float('inf'))
    return dict(lag_p99_ms=bound * 1000 if total else '-', fires=int(total), skipped=int(after[1] - before[1]))


def run_once(label, port, pid, probe_name, tool_words):
    out = f'/tmp/play-bench-{os.getpid()}.json'
    probe = Probe(port, probe_name)
    probe.start()
    # Not --quiet: the first progress line after the warm-up starts the direct client.
    words = [w for w in shlex.split(args.loadtest) if w != '--quiet']
    every = words + tool_words[1:]
    warmup = float(every[every.index('--warmup') + 1]) if '--warmup' in every else 0
    duration = float(every[every.index('--duration') + 1]) if '--duration' in every else 10
    # From a second into the measured phase to a second before its end: the
    # tool's 10,000 connections closing at once (every LEAVE told to its
    # room) is not the load being measured.
    start_line, stop_line = f't={int(warmup) + 1}s ', f't={int(warmup + duration) - 1}s '
    tool = subprocess.Popen(tool_words + words + ['--port', str(port), '--json', out],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, window, end = [], [], []

    lag = {}

    def start_window():
        if not window:
            window.append((time.time(), cpu_seconds(pid))); probe.go.set()
            lag['before'] = lag_histogram(port + 200)

    def end_window():
        if window and not end:
            end.append((time.time(), cpu_seconds(pid))); probe.stop.set()
            lag['after'] = lag_histogram(port + 200)
    timers = [threading.Timer(args.probe_after, start_window),
              threading.Timer(args.probe_after + duration - 2, end_window)] if args.probe_after else []
    for timer in timers:
        timer.start()
    for line in tool.stdout:
        lines.append(line)
        if line.startswith(start_line) and not timers:
            start_window()
        if line.startswith(stop_line) and not timers:
            end_window()
    tool.wait()
    for timer in timers:
        timer.cancel()
    end_window()
    window, end = (window[0], end[0]) if window else (None, None)
    probe.stop.set(); probe.go.set(); probe.join()
    report = json.load(open(out)); os.unlink(out)
    result = dict(
        rps=report['throughput'], p50=report['latency_us']['p50'], p99=report['latency_us']['p99'],
        p999=report['latency_us']['p99.9'], lag99=report.get('send_lag_us', {}).get('p99', 0),
        direct50=percentile(probe.samples, 50 / 100), direct99=percentile(probe.samples, 99 / 100),
        direct999=percentile(probe.samples, 99.9 / 100), directmax=max(probe.samples or [0]),
        srv=(end[1] - window[1]) / (end[0] - window[0]) if window else 0,
        cli=report.get('loadtest_cpu_seconds', 0) / max(report['seconds'], 1e-3), errors=report['errors'],
        ev50=report.get('delivery_latency_us', {}).get('p50', 0), ev99=report.get('delivery_latency_us', {}).get('p99', 0),
        deliveries=report.get('deliveries', 0), **lag_summary(lag.get('before'), lag.get('after')))
    print(f"{label:18} {result['rps']:8.0f}/s tool p50 {result['p50']:6} p99 {result['p99']:6} "
          f"p99.9 {result['p999']:6} lag99 {result['lag99']:5} | direct p50 {result['direct50']:6.0f} "
          f"p99 {result['direct99']:6.0f} max {result['directmax']:6.0f} (n={len(probe.samples)}) | "
          f"server {result['srv']:.2f} cores, tool {result['cli']:.2f} | errors {result['errors']} exit {tool.returncode} | "
          f"events p50 {result['ev50']} p99 {result['ev99']} (n={result['deliveries']}) | timer lag p99 <= {result['lag_p99_ms']} ms "
          f"({result['fires']} fires, {result['skipped']} ticks skipped)",
          flush=True)
    if tool.returncode != 0:
        sys.stdout.write(''.join(lines[-12:]))
    return result


tools = []
for spec in args.tool or ['new=' + os.path.join(ROOT, '.build', 'release', 'loadtest')]:
    name, command = spec.split('=', 1)
    tools.append((name, shlex.split(command)))
variants, servers, port = [], [], 7901
try:
    for spec in args.variant or ['server=']:
        name, extra = spec.split('=', 1)
        words = shlex.split(extra)
        env = dict(os.environ)
        while words and re.match(r'^[A-Z_][A-Z0-9_]*=', words[0]):
            key, value = words.pop(0).split('=', 1); env[key] = value
        binary = next((w[1:] for w in words if w.startswith('@')), args.server)
        words = [w for w in words if not w.startswith('@')]
        server = subprocess.Popen([binary, '--port', str(port), '--admin-port', str(port + 100),
                                   '--max-connections', '19000', '--login-timeout', '0', '--idle-timeout', '0',
                                   '--log-level', 'error', '--metrics-port', str(port + 200)] + words, env=env,
                                  # A directory each: durable players open hotswap.sqlite in the
                                  # working directory, and one file takes one server.
                                  cwd=tempfile.mkdtemp(prefix='hotswap-play-'))
        servers.append(server); variants.append((name, port, server.pid)); port += 1
    time.sleep(1.0)
    pairs = [(variant, tool) for variant in variants for tool in tools]
    results = {(v[0], t[0]): [] for v, t in pairs}
    for round_index in range(args.rounds):
        wait_quiet()  # at most 20 s: other sessions share the machine
        for (name, port, pid), (tool_name, tool_words) in pairs:
            label = f'{round_index} {name}/{tool_name}'
            probe_name = f'probe{round_index}x{len(results[(name, tool_name)])}{tool_name}'[:16]
            results[(name, tool_name)].append(run_once(label, port, pid, probe_name, tool_words))
            time.sleep(1.0)  # the tool's connections close; the server lets them go
finally:
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait()

print(f"MEDIANS of {args.rounds} alternating rounds: loadtest {args.loadtest}")
for key, runs in results.items():
    m = lambda field: statistics.median(r[field] for r in runs)
    print(f"  {'/'.join(key):16} {m('rps'):8.0f}/s  tool p50 {m('p50'):6.0f} p99 {m('p99'):6.0f} p99.9 {m('p999'):6.0f} us"
          f" (send lag p99 {m('lag99'):5.0f})  direct p50 {m('direct50'):5.0f} p99 {m('direct99'):6.0f} "
          f"p99.9 {m('direct999'):6.0f} max {m('directmax'):6.0f} us  server {m('srv'):.2f} cores  tool {m('cli'):.2f} cores"
          f"  events p50 {m('ev50'):6.0f} p99 {m('ev99'):6.0f} us  timer lag p99 <= {[r['lag_p99_ms'] for r in runs]} ms"
          f"  skipped {[r['skipped'] for r in runs]}")
