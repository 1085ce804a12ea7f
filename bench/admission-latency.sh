#!/usr/bin/env bash
# The latency the Terway gate's admission webhook adds to a DaemonSet write,
# on the real control plane (docs/benchmarks.md, "Admission latency").
#
# Runs controller/benches/admission_latency.rs (as root: the test kit needs
# it): one controller with its webhook on loopback,
# Terway created as the add-on manager creates it, then BENCH_WRITES (500)
# server-side applies of an annotation (real writes, stored, no pod roll) to
# Terway (through the webhook) and, alternately, to another DaemonSet of the
# same shape in the same namespace (not matched), each timed by the client.
# Prints p50 and p99 of both and their difference.
#
#   bench/admission-latency.sh                 # BENCH_WRITES=2000 bench/admission-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PATH="$(scripts/control-plane bin-dir):$PATH"
export PATH
export BENCH_WRITES="${BENCH_WRITES:-500}"
cargo bench -q --profile dev -p terway-hybrid-controller --bench admission_latency 2>&1 |
  grep -E '^(admission-latency|through the webhook|not matched|added by the webhook)'
