#!/usr/bin/env python3
"""Benchmark `terway-hybrid-agent detect` against `ip route` on a large route table.

A BGP node (Calico/BIRD, kube-router, ...) can carry hundreds of thousands of
routes. The agent dumps every routing table over netlink and folds the routes
into counters as they stream in (agent/src/collect/netlink.rs, routes.rs), so
it should cost about what `ip -4 route show table all` costs and its memory
should not grow with the table. This script measures both.

What it does
------------
1. Creates a private network namespace `thbench-<pid>` with a bridge `br0`
   (10.255.0.1/16, given carrier by a veth pair `vbr0`/`vbr0p` enslaved to
   it) and loads --routes BGP-like routes in one `ip -n NS -batch -` call:

     - ~60% /26 blocks in 10.0.0.0/8 (10.240.0.0/12 excluded), via one of
       64 peers 10.255.0.2..65 on br0, `proto bird` (Calico IPAM blocks of
       other nodes); the first 16 are `blackhole ... proto bird` (this node's
       own blocks, as Calico installs them);
     - ~35% /32 hosts in 172.16.0.0/12 via a peer, `proto bird`;
     - ~5%  /24 prefixes in 10.0.0.0/8 via a peer, `proto bird`.

   Prefixes are drawn without replacement from a fixed seed (--seed), so the
   set is unique and reproducible. --vxlan-routes N additionally adds a
   flannel-like `flannel.1` vxlan device with N `10.244.K.0/24 via 10.244.K.0
   dev flannel.1 onlink` routes (default 0: it changes the classification).

2. Runs, alternating and --runs times each (after --warmup untimed runs of
   each), with stdout to /dev/null:

     ip netns exec NS ip -4 route show table all
     ip netns exec NS AGENT detect --host-root EMPTY_TMPDIR --output json

   Both go through `ip netns exec`, so the namespace switch (and its /sys
   remount) costs the same for both. Wall time is time.perf_counter() around
   spawn + wait. Peak RSS is ru_maxrss from os.wait4() on the command's pid:
   `ip netns exec` exec()s the target program in place (it only forks in
   -batch mode), so the rusage is the program's. Linux carries the pre-exec
   high-water RSS across exec(), so a child forked straight from this Python
   process would report at least Python's own peak (tens of MiB here): the
   command is therefore started as a background job of a throwaway /bin/sh,
   and this process, made a child subreaper (prctl PR_SET_CHILD_SUBREAPER via
   ctypes), adopts and reaps it. ru_maxrss is then max(RSS of `ip netns exec`
   before its exec, under 3 MiB here, RSS of the program), the same floor for
   both commands; the sh start-up (~1 ms) is in both wall times.

3. Prints median/min/max wall time, peak RSS (max over runs), the ratio
   detect/ip of the medians, and PASS/FAIL against the goals:

     detect median time <= 1.5 x ip median time
     detect peak RSS    <= 40 MiB (40960 KiB)

   It also prints the command line, the kernel version, the IPv4 routes
   loaded (`ip -n NS -4 route show table all`, counted once), the agent's
   answer (scenario, plugin, from `detect --output json`) and the agent's
   own IPv4 route count (`routes.ipv4` of `snapshot`), which must equal the
   count `ip` shows.

The namespace is always deleted (finally block; SIGINT and SIGTERM included).

Requirements: Linux, root, iproute2, Python 3.11 standard library only, and a
release build of the agent:

    cargo build --release -p terway-hybrid-agent

Exit status: 0 all goals met and the counts agree; 1 a goal failed or the
agent's route count differs from ip's; 2 environment or setup error (not
root, agent binary missing, a command failed).

Examples:

    sudo bench/detect-routes.py                     # 300000 routes, 7 runs
    sudo bench/detect-routes.py --routes 10000 --runs 15
    sudo bench/detect-routes.py --json > result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import SetupError, become_subreaper, measure

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AGENT = REPO_ROOT / "target" / "release" / "terway-hybrid-agent"

GOAL_TIME_RATIO = 1.5
GOAL_RSS_KIB = 40 * 1024  # 40 MiB

BRIDGE = "br0"
BRIDGE_ADDR = "10.255.0.1/16"
PEERS = [f"10.255.0.{i}" for i in range(2, 66)]
BLACKHOLES = 16

# Prefix pools: (name, weight, base address, prefix length, number of prefixes).
# 10.240.0.0/12 is left out of the 10/8 pools: it holds the bridge subnet
# (10.255/16) and the optional flannel routes (10.244/16).
POOLS = [
    ("10/8 /26", 0.60, 10 << 24, 26, (240 << 16) >> 6),
    ("172.16/12 /32", 0.35, (172 << 24) | (16 << 16), 32, 1 << 20),
    ("10/8 /24", 0.05, 10 << 24, 24, (240 << 16) >> 8),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dotted(a: int) -> str:
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


def run(cmd: list[str], *, input: bytes | None = None, capture: bool = False) -> str:
    """Runs a setup command; raises SetupError with its stderr if it fails."""
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SetupError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace').strip()[:2000]}")
    return p.stdout.decode() if capture else ""


def route_batch(n: int, seed: int) -> tuple[bytes, dict[str, int]]:
    """`ip -batch` lines adding n unique BGP-like routes, and the count per pool."""
    total_cap = sum(p[4] for p in POOLS)
    if n > total_cap:
        raise SetupError(f"--routes {n} is more than the {total_cap} unique prefixes the pools hold")
    counts = [min(int(n * w), cap) for (_, w, _, _, cap) in POOLS]
    # Hand the rounding remainder, and whatever a full pool could not take,
    # to the pools with room, largest first.
    missing = n - sum(counts)
    for i in sorted(range(len(POOLS)), key=lambda i: -POOLS[i][4]):
        take = min(missing, POOLS[i][4] - counts[i])
        counts[i] += take
        missing -= take
    rng = random.Random(seed)
    lines: list[str] = []
    per_pool: dict[str, int] = {}
    for (name, _, base, plen, cap), count in zip(POOLS, counts):
        per_pool[name] = count
        shift = 32 - plen
        for k, idx in enumerate(rng.sample(range(cap), count)):
            prefix = f"{dotted(base + (idx << shift))}/{plen}"
            if plen == 26 and k < BLACKHOLES:
                lines.append(f"route add blackhole {prefix} proto bird")
            else:
                lines.append(f"route add {prefix} via {rng.choice(PEERS)} dev {BRIDGE} proto bird")
    rng.shuffle(lines)
    return ("\n".join(lines) + "\n").encode(), per_pool


class Namespace:
    def __init__(self, name: str):
        self.name = name
        self.created = False

    def ip(self, *args: str, input: bytes | None = None, capture: bool = False) -> str:
        return run(["ip", "-n", self.name, *args], input=input, capture=capture)

    def create(self, routes: int, vxlan_routes: int, seed: int) -> dict[str, int]:
        run(["ip", "netns", "add", self.name])
        self.created = True
        self.ip("link", "set", "lo", "up")
        self.ip("link", "add", BRIDGE, "type", "bridge")
        self.ip("link", "add", "vbr0", "type", "veth", "peer", "name", "vbr0p")
        self.ip("link", "set", "vbr0p", "master", BRIDGE)
        self.ip("addr", "add", BRIDGE_ADDR, "dev", BRIDGE)
        for dev in (BRIDGE, "vbr0", "vbr0p"):
            self.ip("link", "set", dev, "up")
        batch, per_pool = route_batch(routes, seed)
        if vxlan_routes:
            if vxlan_routes > 11 * 256 - 1:
                raise SetupError("--vxlan-routes is at most 2815 (the /24s of 10.244.1.0 - 10.254.255.0)")
            self.ip("link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", BRIDGE_ADDR.split("/")[0],
                    "dev", BRIDGE, "dstport", "8472", "nolearning")
            self.ip("link", "set", "flannel.1", "mtu", "1450", "up")
            self.ip("addr", "add", "10.244.0.0/32", "dev", "flannel.1")
            extra = []
            for k in range(1, vxlan_routes + 1):
                net = dotted((10 << 24) + (244 << 16) + (k << 8))  # 10.244.1.0, ..., rolls into 10.245+
                extra.append(f"route add {net}/24 via {net} dev flannel.1 onlink")
            batch += ("\n".join(extra) + "\n").encode()
            per_pool["flannel.1 onlink /24"] = vxlan_routes
        t0 = time.perf_counter()
        self.ip("-batch", "-", input=batch)
        per_pool["_load_seconds"] = round(time.perf_counter() - t0, 2)
        return per_pool

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
            self.created = False


def summary(times: list[float], rss: list[int]) -> dict:
    return {
        "runs": len(times),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "peak_rss_kib": max(rss),
        "times_s": times,
        "rss_kib": rss,
    }


def parse_args() -> argparse.Namespace:
    first, _, _ = __doc__.partition("\n")
    ap = argparse.ArgumentParser(
        description=first,
        epilog=("Runs as root. Creates a network namespace thbench-<pid>, loads the routes, times "
                "`ip netns exec NS ip -4 route show table all` against `ip netns exec NS AGENT detect "
                "--host-root EMPTY --output json`, and deletes the namespace. Goals: detect median "
                f"<= {GOAL_TIME_RATIO}x ip median, detect peak RSS <= {GOAL_RSS_KIB // 1024} MiB. "
                "Exit 0 pass, 1 a goal failed or counts differ, 2 setup error. See the module docstring."),
    )
    ap.add_argument("--agent", type=Path, default=DEFAULT_AGENT,
                    help=f"agent binary (default: {DEFAULT_AGENT})")
    ap.add_argument("--routes", type=int, default=300_000, help="BGP-like routes to load (default: 300000)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each command (default: 7)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each command first (default: 1)")
    ap.add_argument("--vxlan-routes", type=int, default=0,
                    help="also add a flannel.1 vxlan device with this many onlink /24 routes (default: 0)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the prefix generator (default: 1)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args()
    if args.routes < 0 or args.runs < 1 or args.warmup < 0 or args.vxlan_routes < 0:
        ap.error("--routes, --warmup and --vxlan-routes must be >= 0 and --runs >= 1")
    return args


def fmt_ms(s: float) -> str:
    return f"{s * 1000:9.1f}"


def print_table(r: dict) -> None:
    ip, det = r["ip"], r["detect"]
    print(f"command:        {r['command_line']}")
    print(f"kernel:         {r['kernel']}")
    print(f"agent:          {r['agent']}")
    print(f"namespace:      {r['namespace']}  (routes loaded in {r['load_seconds']} s)")
    pools = ", ".join(f"{k}: {v}" for k, v in r["generated"].items())
    print(f"generated:      {r['routes_requested']} routes ({pools})")
    print(f"ipv4 routes:    {r['ipv4_routes_ip']} in all tables per `ip -4 route show table all` "
          f"({r['bird_routes_ip']} proto bird)")
    print(f"agent snapshot: routes.ipv4 = {r['ipv4_routes_agent']}  "
          f"[{'MATCH' if r['counts_match'] else 'MISMATCH'}]")
    print(f"agent answer:   scenario={r['scenario']} plugin={r['plugin']} confidence={r['confidence']}")
    print(f"measured:       ip:     {r['commands']['ip']}")
    print(f"                detect: {r['commands']['detect']}")
    print(f"runs:           {r['runs']} each, alternating, after {r['warmup']} warm-up run(s) each")
    print()
    print(f"{'':8}{'median ms':>10}{'min ms':>10}{'max ms':>10}{'peak RSS KiB':>14}{'peak RSS MiB':>14}")
    for name, s in (("ip", ip), ("detect", det)):
        print(f"{name:8}{fmt_ms(s['median_s']):>10}{fmt_ms(s['min_s']):>10}{fmt_ms(s['max_s']):>10}"
              f"{s['peak_rss_kib']:>14}{s['peak_rss_kib'] / 1024:>14.1f}")
    print()
    g = r["goals"]
    print(f"ratio detect/ip (median): {r['ratio']:.2f}")
    print(f"goal time  detect <= {GOAL_TIME_RATIO}x ip:        {r['ratio']:.2f}x   "
          f"{'PASS' if g['time'] else 'FAIL'}")
    print(f"goal RSS   detect <= {GOAL_RSS_KIB} KiB:   {det['peak_rss_kib']} KiB   "
          f"{'PASS' if g['rss'] else 'FAIL'}")
    print(f"result: {'PASS' if r['pass'] else 'FAIL'}")


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        log("error: run as root (it creates a network namespace)")
        return 2
    agent = args.agent.resolve()
    if not (agent.is_file() and os.access(agent, os.X_OK)):
        log(f"error: agent binary {agent} not found or not executable; "
            f"build it with `cargo build --release -p terway-hybrid-agent` (in {REPO_ROOT})")
        return 2

    ns = Namespace(f"thbench-{os.getpid()}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        with tempfile.TemporaryDirectory(prefix="thbench-root-") as empty_root, \
                tempfile.TemporaryDirectory(prefix="thbench-scratch-") as scratch:
            log(f"creating {ns.name} with {args.routes} routes ...")
            generated = ns.create(args.routes, args.vxlan_routes, args.seed)
            load_seconds = generated.pop("_load_seconds")

            shown = ns.ip("-4", "route", "show", "table", "all", capture=True).splitlines()
            ipv4_ip = len(shown)
            bird_ip = sum(1 for line in shown if " proto bird" in line)
            exec_ns = ["ip", "netns", "exec", ns.name]
            agent_common = ["--host-root", empty_root]
            snap = json.loads(run([*exec_ns, str(agent), "snapshot", *agent_common], capture=True))
            ipv4_agent = snap["routes"]["ipv4"]
            detect_cmd = [*exec_ns, str(agent), "detect", *agent_common, "--output", "json"]
            answer = json.loads(run(detect_cmd, capture=True))
            ip_cmd = [*exec_ns, "ip", "-4", "route", "show", "table", "all"]
            errfile = os.path.join(scratch, "stderr")
            become_subreaper()

            for _ in range(args.warmup):
                measure(ip_cmd, errfile)
                measure(detect_cmd, errfile)
            times = {"ip": [], "detect": []}
            rss = {"ip": [], "detect": []}
            for i in range(args.runs):
                for name, cmd in (("ip", ip_cmd), ("detect", detect_cmd)):
                    t, m = measure(cmd, errfile)
                    times[name].append(t)
                    rss[name].append(m)
                log(f"run {i + 1}/{args.runs}: ip {times['ip'][-1] * 1000:.1f} ms {rss['ip'][-1]} KiB, "
                    f"detect {times['detect'][-1] * 1000:.1f} ms {rss['detect'][-1]} KiB")
    except SetupError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        ns.delete()

    ip_s, det_s = summary(times["ip"], rss["ip"]), summary(times["detect"], rss["detect"])
    ratio = det_s["median_s"] / ip_s["median_s"]
    goals = {"time": ratio <= GOAL_TIME_RATIO, "rss": det_s["peak_rss_kib"] <= GOAL_RSS_KIB}
    result = {
        "command_line": shlex.join([sys.executable, *sys.argv]),
        "kernel": platform.release(),
        "agent": str(agent),
        "namespace": ns.name,
        "routes_requested": args.routes,
        "vxlan_routes": args.vxlan_routes,
        "generated": generated,
        "load_seconds": load_seconds,
        "ipv4_routes_ip": ipv4_ip,
        "bird_routes_ip": bird_ip,
        "ipv4_routes_agent": ipv4_agent,
        "counts_match": ipv4_agent == ipv4_ip,
        "scenario": answer.get("scenario"),
        "plugin": answer.get("plugin"),
        "confidence": answer.get("confidence"),
        "commands": {"ip": shlex.join(ip_cmd), "detect": shlex.join(detect_cmd)},
        "runs": args.runs,
        "warmup": args.warmup,
        "ip": ip_s,
        "detect": det_s,
        "ratio": ratio,
        "goals": {"time_ratio_max": GOAL_TIME_RATIO, "rss_kib_max": GOAL_RSS_KIB, **goals},
        "pass": all(goals.values()) and ipv4_agent == ipv4_ip,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
