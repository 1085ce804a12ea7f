#!/usr/bin/env python3
"""Idle footprint of `terway-hybrid-agent run`: memory and CPU between events.

Starts the agent in --standalone mode inside a network namespace of its own
(built like a flannel VXLAN node: flannel.1 with onlink routes, the flannel
CNI files), waits until /readyz answers, lets it settle, then samples the
process's own figures from /proc/PID:

  - VmRSS and VmHWM (resident and peak resident memory),
  - utime+stime (CPU ticks) and schedstat (CPU nanoseconds),
  - voluntary context switches (each one is a wake-up),

at the start and the end of an idle window (default 60 s) in which nothing in
the namespace changes. Goal: RSS <= 15 MB and no CPU between events.

Run as root after `cargo build --release -p terway-hybrid-agent`:

    python3 bench/agent-idle.py [--seconds 60] [--agent PATH] [--json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def proc_figures(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return {
        "rss_kib": int(status["VmRSS"].split()[0]),
        "hwm_kib": int(status["VmHWM"].split()[0]),
        "cpu_ticks": ticks,
        "cpu_ns": cpu_ns,
        "voluntary_switches": int(status["voluntary_ctxt_switches"]),
        "threads": int(status["Threads"]),
    }


def build_flannel_node(ns, root):
    sh("ip", "netns", "add", ns)
    ip = lambda *a: sh("ip", "-n", ns, *a)  # noqa: E731
    ip("link", "set", "lo", "up")
    ip("link", "add", "eth0", "type", "bridge")
    ip("addr", "add", "192.168.77.11/24", "dev", "eth0")
    ip("link", "set", "eth0", "up")
    ip("link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "nolearning",
       "local", "192.168.77.11", "dev", "eth0")
    ip("addr", "add", "10.244.0.0/32", "dev", "flannel.1")
    ip("link", "set", "flannel.1", "up")
    for n in range(1, 21):
        ip("route", "add", f"10.244.{n}.0/24", "via", f"10.244.{n}.0", "dev", "flannel.1", "onlink")
    os.makedirs(f"{root}/etc/cni/net.d")
    os.makedirs(f"{root}/run/flannel")
    os.makedirs(f"{root}/proc/sys/net/ipv4")
    with open(f"{root}/etc/cni/net.d/10-flannel.conflist", "w") as f:
        json.dump({"name": "cbr0", "cniVersion": "0.3.1",
                   "plugins": [{"type": "flannel", "delegate": {}}, {"type": "portmap"}]}, f)
    with open(f"{root}/run/flannel/subnet.env", "w") as f:
        f.write("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\nFLANNEL_MTU=1450\n")
    with open(f"{root}/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


def http_in_ns(ns, url):
    out = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                         capture_output=True, text=True)
    return out.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="idle window (default 60)")
    p.add_argument("--agent", default=os.path.join(REPO, "target/release/terway-hybrid-agent"))
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("agent-idle: run as root (it creates a network namespace)")
    if not os.access(args.agent, os.X_OK):
        sys.exit(f"agent-idle: {args.agent} missing: run `cargo build --release -p terway-hybrid-agent`")

    ns = f"thidle-{os.getpid()}"
    root = tempfile.mkdtemp(prefix="thidle-root-")
    agent = None
    try:
        build_flannel_node(ns, root)
        agent = subprocess.Popen(["ip", "netns", "exec", ns, args.agent, "run", "--standalone",
                                  "--host-root", root, "--metrics-addr", "127.0.0.1:9797"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while http_in_ns(ns, "http://127.0.0.1:9797/readyz") != "200":
            if time.time() > deadline or agent.poll() is not None:
                sys.exit("agent-idle: the agent never became ready")
            time.sleep(0.1)
        # Let the start-up settle: IPv6 address events of the new devices, and
        # tokio's blocking thread (used by the detection) retiring after 10 s.
        time.sleep(15)
        before = proc_figures(agent.pid)
        time.sleep(args.seconds)
        after = proc_figures(agent.pid)
        # One scrape, to show what a Prometheus scrape costs.
        http_in_ns(ns, "http://127.0.0.1:9797/metrics")
        scraped = proc_figures(agent.pid)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "idle_seconds": args.seconds,
        "rss_kib": after["rss_kib"],
        "peak_rss_kib": after["hwm_kib"],
        "threads": after["threads"],
        "idle_cpu_ns": after["cpu_ns"] - before["cpu_ns"],
        "idle_cpu_ticks": after["cpu_ticks"] - before["cpu_ticks"],
        "idle_wakeups": after["voluntary_switches"] - before["voluntary_switches"],
        "scrape_cpu_ns": scraped["cpu_ns"] - after["cpu_ns"],
        "exit_code": agent.returncode,
    }
    ok = result["rss_kib"] <= 15 * 1024 and result["idle_cpu_ticks"] == 0
    if args.json:
        print(json.dumps({**result, "pass": ok}))
    else:
        print(f"command:        {' '.join(sys.argv)}")
        print(f"agent:          {args.agent} run --standalone (flannel VXLAN node, 20 routes)")
        print(f"idle window:    {args.seconds:.0f} s with no change in the namespace")
        print(f"RSS:            {result['rss_kib']} KiB (peak {result['peak_rss_kib']} KiB), "
              f"{result['threads']} threads")
        print(f"idle CPU:       {result['idle_cpu_ns'] / 1e6:.3f} ms ({result['idle_cpu_ticks']} ticks), "
              f"{result['idle_wakeups']} wake-ups")
        print(f"one /metrics scrape: {result['scrape_cpu_ns'] / 1e6:.3f} ms CPU")
        print(f"SIGTERM exit code: {result['exit_code']}")
        print(f"goal RSS <= 15 MB and no idle CPU: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
