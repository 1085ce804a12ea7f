#!/usr/bin/env python3
"""What one round of cross-site probes costs an agent, and what BIRD's
imported prefixes cost to read (docs/benchmarks.md, "Cross-site probes").

Part 1: probes. A prober namespace reaches N peer namespaces through a
router namespace; every peer runs `terway-hybrid-agent respond`. Two paths:

  icmp    the router's link to each peer has MTU 1400: a 1500-byte probe
          gets ICMP "fragmentation needed" and the kernel learns 1400;
  silent  each peer's own eth0 has MTU 1296 (a veth drops what exceeds its
          receiver's MTU, without ICMP): only the size search finds 1300.

For each, one round `terway-hybrid-agent probe --peer P1 ... --peer PN`
(all peers in parallel) is run cold (route cache flushed: the PMTU must be
learnt again) and warm (the kernel still knows it). Figures: CPU time of
the probe process (user + sys, from wait4), packets through the prober's
eth0 (tx + rx, from /sys/class/net/eth0/statistics), wall time. The floor
to compare with: per peer, `ping -M do -s SIZE -c 1` at the known path MTU
(2 packets: what anything that checks the size must send at least), and a
ping binary search of the same bounds for the silent path.

Part 2: BIRD. A node's BIRD with --sessions BGP sessions importing
--routes routes in all (real BIRD 2 in two namespaces); over BIRD's socket,
time and bytes of `show route` once (every route) against `show route
protocol NAME` for each session (what the agent sends).

Run as root from the repository, after `cargo build -p terway-hybrid-agent`:
    bench/probe-cost.py [--agent target/debug/terway-hybrid-agent]
                        [--peers 3,8] [--routes 20000] [--sessions 8]
Everything lives in namespaces named thbench-probe-<pid>-*, removed at exit.
"""

import argparse
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PID = os.getpid()
CREATED = []
DAEMONS = []


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def ns(name):
    full = f"thbench-probe-{PID}-{name}"
    sh("ip", "netns", "add", full)
    CREATED.append(full)
    sh("ip", "-n", full, "link", "set", "lo", "up")
    return full


def ip(n, *args):
    sh("ip", "-n", n, *args)


def cleanup():
    for p in DAEMONS:
        p.kill()
        p.wait()
    for n in reversed(CREATED):
        pids = sh("ip", "netns", "pids", n, check=False).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), 9)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", n, check=False)


atexit.register(cleanup)


def run_counted(argv):
    """Runs argv; returns (wall seconds, cpu seconds, stdout, exit code).
    `ip netns exec` execs the program in place, so wait4's rusage is the
    program's own."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, ru.ru_utime + ru.ru_stime, out, p.returncode


def packets(n):
    def stat(k):
        return int(sh("ip", "netns", "exec", n, "cat", f"/sys/class/net/eth0/statistics/{k}").stdout)

    return stat("tx_packets") + stat("rx_packets")


def probe_world(peers, mode, agent):
    prober, router = ns("prober"), ns("router")
    ip(router, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", prober)
    ip(router, "addr", "add", "10.60.0.1/24", "dev", "eth0")
    ip(prober, "addr", "add", "10.60.0.2/24", "dev", "eth0")
    ip(router, "link", "set", "eth0", "up")
    ip(prober, "link", "set", "eth0", "up")
    ip(prober, "route", "add", "default", "via", "10.60.0.1")
    sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    addrs = []
    for k in range(peers):
        peer = ns(f"peer{k}")
        ip(router, "link", "add", f"p{k}", "type", "veth", "peer", "name", "eth0", "netns", peer)
        ip(router, "addr", "add", f"10.61.{k}.1/24", "dev", f"p{k}")
        ip(peer, "addr", "add", f"10.61.{k}.2/24", "dev", "eth0")
        ip(router, "link", "set", f"p{k}", "up")
        ip(peer, "link", "set", "eth0", "up")
        ip(peer, "route", "add", "default", "via", f"10.61.{k}.1")
        if mode == "icmp":
            ip(router, "link", "set", f"p{k}", "mtu", "1400")
        else:
            ip(peer, "link", "set", "eth0", "mtu", "1296")
        DAEMONS.append(
            subprocess.Popen(
                ["ip", "netns", "exec", peer, agent, "respond", "--probe-addr", "0.0.0.0:9799"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        addrs.append(f"10.61.{k}.2")
    return prober, addrs


def one_round(prober, addrs, agent):
    argv = ["ip", "netns", "exec", prober, agent, "probe", "--output", "json", "--timeout-ms", "5000"]
    for a in addrs:
        argv += ["--peer", a]
    before = packets(prober)
    wall, cpu, out, _ = run_counted(argv)
    return wall, cpu, packets(prober) - before, out


def ping(prober, addr, size):
    """One DF ping of an IP packet of `size` bytes: (answered, cpu, wall)."""
    wall, cpu, _, code = run_counted(
        ["ip", "netns", "exec", prober, "ping", "-n", "-q", "-M", "do", "-c", "1", "-W", "1", "-s", str(size - 28), addr]
    )
    return code == 0, wall, cpu


def ping_floor(prober, addrs, mtu, search):
    before = packets(prober)
    cpu = wall = 0.0
    for a in addrs:
        if not search:
            ok, w, c = ping(prober, a, mtu)
            assert ok, f"ping {a} at {mtu}"
            wall, cpu = wall + w, cpu + c
            continue
        lo, hi = 576, 1501  # lo arrives, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, w, c = ping(prober, a, mid)
            wall, cpu = wall + w, cpu + c
            lo, hi = (mid, hi) if ok else (lo, mid)
        assert lo == mtu, f"the ping search found {lo}, not {mtu}"
    return wall, cpu, packets(prober) - before


def part_probes(args):
    print("## probes: one round, all peers in parallel")
    print(f"agent: {args.agent}")
    print("| path | peers | round | CPU ms | packets | wall ms | pathMtu |")
    print("|---|---|---|---|---|---|---|")
    floors = []
    for mode in ("icmp", "silent"):
        for n in args.peers:
            prober, addrs = probe_world(n, mode, args.agent)
            time.sleep(0.5)  # responders bind
            one_round(prober, addrs, args.agent)  # the agent's pages in the page cache
            for label in ("cold", "warm"):
                if label == "cold":
                    ip(prober, "route", "flush", "cache")
                wall, cpu, pk, out = one_round(prober, addrs, args.agent)
                mtus = sorted({r.get("pathMtu") for r in json.loads(out)}, key=str)
                print(f"| {mode} | {n} | {label} | {cpu * 1000:.1f} | {pk} | {wall * 1000:.0f} | {mtus} |")
            ip(prober, "route", "flush", "cache")
            mtu = 1400 if mode == "icmp" else 1300
            w, c, p = ping_floor(prober, addrs, mtu, search=(mode == "silent"))
            floors.append((mode, n, c, p, w, "1 ping at the MTU" if mode == "icmp" else "ping binary search 576..1500"))
            cleanup_world()
    print()
    print("Floor (ping -M do):")
    print("| path | peers | what | CPU ms | packets | wall ms |")
    print("|---|---|---|---|---|---|")
    for mode, n, c, p, w, what in floors:
        print(f"| {mode} | {n} | {what} | {c * 1000:.1f} | {p} | {w * 1000:.0f} |")


def cleanup_world():
    global CREATED, DAEMONS
    cleanup()
    CREATED, DAEMONS = [], []


def bird_conf(router_id, sessions, me, them, routes_per_session=0):
    """Session s joins 10.50.s.<me> to 10.50.s.<them>: a distinct address
    pair per session, so BIRD matches each incoming connection to its own
    protocol."""
    conf = f"router id {router_id};\nprotocol device {{}}\n"
    for s in range(sessions):
        if routes_per_session:
            conf += f"protocol static s{s} {{ ipv4;\n"
            for r in range(s * routes_per_session, (s + 1) * routes_per_session):
                conf += f"  route 10.{100 + (r >> 16)}.{(r >> 8) & 255}.{r & 255}/32 blackhole;\n"
            conf += "}\n"
        export = f'where proto = "s{s}"' if routes_per_session else "none"
        conf += (
            f"protocol bgp p{s} {{ local 10.50.{s}.{me} as 64512; neighbor 10.50.{s}.{them} as 64512; direct;\n"
            f"  connect delay time 1; connect retry time 1; ipv4 {{ import all; export {export}; }}; }}\n"
        )
    return conf


def bird_exchange(sock_path, commands):
    """Sends each command on one connection; returns [(seconds, bytes, lines)]."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile("rb")
    f.readline()  # greeting
    out = []
    for cmd in commands:
        start = time.perf_counter()
        s.sendall(cmd.encode() + b"\n")
        size = lines = 0
        while True:
            line = f.readline()
            size += len(line)
            lines += 1
            if len(line) >= 5 and line[:4].isdigit() and line[4:5] == b" ":
                break
        out.append((time.perf_counter() - start, size, lines))
    s.close()
    return out


def part_bird(args):
    print()
    print(f"## BIRD: {args.routes} routes over {args.sessions} sessions")
    a, b = ns("birda"), ns("birdb")
    ip(a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
    for s in range(args.sessions):
        ip(a, "addr", "add", f"10.50.{s}.1/24", "dev", "eth0")
        ip(b, "addr", "add", f"10.50.{s}.2/24", "dev", "eth0")
    ip(a, "link", "set", "eth0", "up")
    ip(b, "link", "set", "eth0", "up")
    tmp = tempfile.mkdtemp(prefix="thbench-bird-")
    per = args.routes // args.sessions
    confs = {
        a: bird_conf("10.50.0.1", args.sessions, 1, 2),
        b: bird_conf("10.50.0.2", args.sessions, 2, 1, routes_per_session=per),
    }
    socks = {}
    for n, conf in confs.items():
        path = os.path.join(tmp, n + ".conf")
        with open(path, "w") as f:
            f.write(conf)
        socks[n] = os.path.join(tmp, n + ".ctl")
        DAEMONS.append(subprocess.Popen(["ip", "netns", "exec", n, "bird", "-f", "-c", path, "-s", socks[n]],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(1)
        try:
            out = sh("birdc", "-s", socks[a], "show", "route", "count").stdout
        except subprocess.CalledProcessError:
            continue
        if f"{per * args.sessions} of {per * args.sessions} routes" in out:
            break
    else:
        sys.exit(f"BIRD did not learn the routes: {out}")
    print("| command | seconds | bytes | lines |")
    print("|---|---|---|---|")
    for _ in range(2):  # the second pass is the one shown (warm)
        whole = bird_exchange(socks[a], ["show route"])[0]
        each = bird_exchange(socks[a], [f"show route protocol p{s}" for s in range(args.sessions)])
    print(f"| show route (once) | {whole[0]:.3f} | {whole[1]} | {whole[2]} |")
    total = [sum(x[i] for x in each) for i in range(3)]
    print(f"| show route protocol pN (x{args.sessions}) | {total[0]:.3f} | {total[1]} | {total[2]} |")
    print(f"| show route protocol p0 (one) | {each[0][0]:.3f} | {each[0][1]} | {each[0][2]} |")
    # The agent itself, with BIRD's socket where calico-node puts it.
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "var/run/calico"))
    os.symlink(socks[a], os.path.join(root, "var/run/calico/bird.ctl"))
    wall, cpu, out, _ = run_counted(["ip", "netns", "exec", a, args.agent, "snapshot", "--host-root", root])
    bird = json.loads(out)["bird"]
    bgp = [p for p in bird.get("protocols", []) if p["proto"] == "BGP"]
    with_prefixes = sum(1 for p in bgp if p.get("importedPrefixes"))
    print(
        f"| agent `snapshot` (whole collection) | {wall:.3f} | BIRD {bird['state']} | "
        f"{with_prefixes} of {len(bgp)} sessions with importedPrefixes; CPU {cpu * 1000:.0f} ms |"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default="target/debug/terway-hybrid-agent")
    ap.add_argument("--peers", default="3,8")
    ap.add_argument("--routes", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--skip-bird", action="store_true")
    ap.add_argument("--skip-probes", action="store_true")
    args = ap.parse_args()
    args.peers = [int(p) for p in args.peers.split(",")]
    args.agent = os.path.abspath(args.agent)
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds network namespaces")
    if not args.skip_probes:
        part_probes(args)
    if not args.skip_bird:
        part_bird(args)


if __name__ == "__main__":
    main()
