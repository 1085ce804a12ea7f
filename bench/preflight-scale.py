#!/usr/bin/env python3
"""`terway-hybrid preflight --from-dump` on a 10,000-node cluster dump.

Generates (once, cached under --workdir) a dump with bench/gen-dump.py:
N nodes (70% on-prem, 30% cloud) with their NodeNetworkReports, the CNI,
Terway and agent DaemonSets and their pods, as one `kind: List` JSON file,
then times, alternating, the natural floor `jq '.items | length' FILE` and
`terway-hybrid preflight --from-dump DIR --output json`, and reports the
medians and each one's peak RSS (ru_maxrss of the process itself).

Goal: preflight <= 2x the jq time and <= 400 MB peak RSS.

    cargo build --release -p terway-hybrid-controller
    python3 bench/preflight-scale.py [--nodes 10000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import SetupError, become_subreaper, measure

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scenario", default="bgp", choices=["bgp", "overlay", "host-network"])
    p.add_argument("--cli", default=str(REPO / "target/release/terway-hybrid"))
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "th-preflight-scale"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not os.access(args.cli, os.X_OK):
        print(f"{args.cli} missing: run `cargo build --release -p terway-hybrid-controller`", file=sys.stderr)
        return 2
    if not shutil.which("jq"):
        print("jq is missing: apt-get install -y jq", file=sys.stderr)
        return 2

    on_prem = args.nodes * 7 // 10
    cloud = args.nodes - on_prem
    dump = Path(args.workdir) / f"{args.scenario}-{args.nodes}"
    if not (dump / "cluster.json").exists():
        print(f"generating {dump} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(REPO / "bench/gen-dump.py"), "--scenario", args.scenario,
                        "--on-prem", str(on_prem), "--cloud", str(cloud), "--single-file", "--out", str(dump)],
                       check=True)
    cluster = dump / "cluster.json"
    items = json.loads(cluster.read_text())["items"]
    kinds: dict[str, int] = {}
    for o in items:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    size_mb = cluster.stat().st_size / 1e6

    become_subreaper()
    err = str(Path(args.workdir) / "stderr.txt")
    jq_cmd = ["jq", ".items | length", str(cluster)]
    pf_cmd = [args.cli, "preflight", "--from-dump", str(dump), "--output", "json"]
    # Warm the page cache for both.
    measure(jq_cmd, err)
    measure(pf_cmd, err, ok_codes=(0, 1))
    jq_t, jq_rss, pf_t, pf_rss = [], [], [], []
    try:
        for i in range(args.runs):
            t, r = measure(jq_cmd, err)
            jq_t.append(t)
            jq_rss.append(r)
            t, r = measure(pf_cmd, err, ok_codes=(0, 1))
            pf_t.append(t)
            pf_rss.append(r)
            print(f"run {i + 1}/{args.runs}: jq {jq_t[-1] * 1000:.0f} ms, preflight {pf_t[-1] * 1000:.0f} ms "
                  f"{pf_rss[-1] / 1024:.0f} MiB", file=sys.stderr)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    result = {
        "nodes": args.nodes, "objects": kinds, "dump_mb": round(size_mb, 1),
        "jq_median_s": statistics.median(jq_t), "jq_peak_rss_kib": max(jq_rss),
        "preflight_median_s": statistics.median(pf_t), "preflight_peak_rss_kib": max(pf_rss),
    }
    result["ratio"] = result["preflight_median_s"] / result["jq_median_s"]
    ok = result["ratio"] <= 2.0 and result["preflight_peak_rss_kib"] <= 400 * 1024
    if args.json:
        print(json.dumps({**result, "pass": ok}))
    else:
        print(f"command:     {' '.join(pf_cmd)}")
        print(f"floor:       {' '.join(jq_cmd)}")
        print(f"dump:        {size_mb:.1f} MB, {len(items)} objects ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))})")
        print(f"runs:        {args.runs} each, alternating, after a warm-up")
        print(f"jq:          median {result['jq_median_s'] * 1000:.0f} ms, peak RSS {max(jq_rss) / 1024:.0f} MiB")
        print(f"preflight:   median {result['preflight_median_s'] * 1000:.0f} ms, peak RSS {max(pf_rss) / 1024:.0f} MiB")
        print(f"ratio:       {result['ratio']:.2f}x  (goal <= 2x)")
        print(f"result:      {'PASS' if ok else 'FAIL'} (goals: <= 2x jq, <= 400 MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
