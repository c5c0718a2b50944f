#!/usr/bin/env python3
"""Alternating rounds of redis-benchmark ping_inline against several servers
(each round runs every target once, in order), then the medians.

Per run: req/s; the server's CPU per request (utime+stime of the server
process from /proc/PID/stat over the run); the client's CPU per request
(redis-benchmark's rusage); the server's voluntary context switches (how
often it went to sleep); and 'other', the CPU the rest of the machine used
meanwhile (a run with more than ~0.2 s of it was disturbed).

    python3 tools/bench-rounds.py --P 16 --variant "before=--busy-poll 0" --variant "after="
    python3 tools/bench-rounds.py --P 1 --n 300000 --variant "before=--busy-poll 0" --variant "after="

A variant is NAME=EXTRA-GAMESERVER-ARGS, or NAME=cmd:COMMAND with {port} for
another server; redis-server is always the last target. Needs a release
build (swift build -c release) and redis-server/redis-benchmark.

With --scrape-every S, every variant started with `--metrics-port PORT` is
scraped (GET /metrics) every S seconds for the whole run, as Prometheus
would, so its server CPU per request includes rendering the exposition:

    python3 tools/bench-rounds.py --P 16 --scrape-every 1 --variant "off=" \
        --variant "on=--metrics-port 7990" --variant "every=--metrics-port 7991 --metrics-sample-every 1"
"""
import os, subprocess, time, statistics, tempfile, threading, urllib.request
from benchlib import ROOT, TICKS, arg_parser, busy_ticks, cpu_ticks, voluntary_switches, wait_quiet
ap = arg_parser(__doc__)
ap.add_argument('--rounds', type=int, default=5)
ap.add_argument('--P', type=int, default=16)
ap.add_argument('--n', type=int, default=2000000)
ap.add_argument('--c', type=int, default=50)
ap.add_argument('--server', default=os.path.join(ROOT, '.build', 'release', 'gameserver'))
ap.add_argument('--variant', action='append', default=[], help='name=extra server args')
ap.add_argument('--nice', type=int, default=0)
ap.add_argument('--scrape-every', type=float, default=0, help='seconds between scrapes of --metrics-port variants')
args = ap.parse_args()
def cpu(pid):  # (utime, stime, voluntary context switches)
    return (*cpu_ticks(pid), voluntary_switches(pid))
pre = ['nice', '-n', str(args.nice)] if args.nice else []
targets = []
procs = []
port = 7801
for v in (args.variant or ['ours=']):
    name, extra = v.split('=', 1)
    if extra.startswith('cmd:'):
        p = subprocess.Popen(pre + extra[4:].replace('{port}', str(port)).split())
        procs.append(p); targets.append((name, port, p.pid)); port += 1
        continue
    p = subprocess.Popen(pre + [args.server, '--port', str(port), '--admin-port', str(port + 100), '--rate-limit', '0',
                                '--database', os.path.join(tempfile.mkdtemp(prefix='hotswap-bench-'), 'bench.sqlite'),
                          '--login-timeout', '0', '--idle-timeout', '0', '--log-level', 'warning'] + extra.split())
    procs.append(p); targets.append((name, port, p.pid)); port += 1
p = subprocess.Popen(pre + ['redis-server', '--port', '6399', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
                     stdout=subprocess.DEVNULL)
procs.append(p); targets.append(('redis', 6399, p.pid))
time.sleep(1.0)
scrapes = {}
stop_scraping = threading.Event()
def scrape(url):
    while not stop_scraping.wait(args.scrape_every):
        try:
            urllib.request.urlopen(url, timeout=2).read()
            scrapes[url] = scrapes.get(url, 0) + 1
        except OSError:
            pass
if args.scrape_every > 0:
    for v in args.variant:
        words = v.split('=', 1)[1].split()
        if '--metrics-port' in words:
            url = f"http://127.0.0.1:{words[words.index('--metrics-port') + 1]}/metrics"
            threading.Thread(target=scrape, args=(url,), daemon=True).start()
res = {t[0]: [] for t in targets}
try:
    for r in range(args.rounds):
        wait_quiet()  # at most 20 s: other sessions share the machine
        for name, port, pid in targets:
            s0 = cpu(pid); b0 = busy_ticks(); t0 = time.time()
            p = subprocess.Popen(pre + ['redis-benchmark', '-p', str(port), '-t', 'ping_inline', '-c', str(args.c), '-n', str(args.n),
                                  '-P', str(args.P), '-q', '--csv'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            _, status, ru = os.wait4(p.pid, 0)
            out = p.stdout.read(); el = time.time() - t0
            s1 = cpu(pid); b1 = busy_ticks()
            su, ss = (s1[0]-s0[0])/TICKS, (s1[1]-s0[1])/TICKS
            other = (b1 - b0)/TICKS - su - ss - ru.ru_utime - ru.ru_stime
            rps = [float(l.split('"')[3]) for l in out.splitlines() if 'PING_INLINE' in l][0]
            d = dict(rps=rps, srv=(su+ss)*1e6/args.n, cli=(ru.ru_utime+ru.ru_stime)*1e6/args.n, cli_s=ru.ru_stime,
                     srv_vcsw=s1[2]-s0[2], other=other, el=el)
            res[name].append(d)
            print(f"{r} {name:6} rps={rps:10.0f} srv={d['srv']:.3f}us/req (u {su:.2f} s {ss:.2f}) cli={d['cli']:.3f}us/req (s {ru.ru_stime:.2f}) srv_vcsw={d['srv_vcsw']} other={other:.2f}s", flush=True)
finally:
    stop_scraping.set()
    for p in procs: p.terminate()
    for p in procs: p.wait()
med = lambda name, k: statistics.median(x[k] for x in res[name])
print(f"MEDIANS of {args.rounds} alternating rounds, -P {args.P} -c {args.c} -n {args.n}:")
for name, _, _ in targets:
    print(f"  {name:6} rps={med(name,'rps'):10.0f} ({med(name,'rps')/med('redis','rps'):.3f}x redis)  srv_cpu={med(name,'srv'):.3f}us/req  cli_cpu={med(name,'cli'):.3f}us/req  srv_vcsw={med(name,'srv_vcsw'):.0f}  other={med(name,'other'):.2f}s")
for url, count in sorted(scrapes.items()):
    print(f"  {count} scrapes of {url}")
