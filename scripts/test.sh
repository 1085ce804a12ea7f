#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the system packages the tests
# use (BIRD, iproute2, socat, ...), builds the Kubernetes control plane from
# its Go modules (cached after the first time), then formatting, lints and
# every test. Run as root: the integration tests build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
# A run builds ~60 test binaries, the control plane and the fuzz targets; a
# full disk once failed CI, so say how much room there is at the start and
# before the fuzz build.
free_disk() { printf '[test] %s: %s free on the disk of %s\n' "$1" "$(df -h --output=avail . | tail -1 | tr -d ' ')" "$PWD" >&2; }
# Incremental compilation only pays when the same crate is rebuilt after an
# edit; here it would add gigabytes to target/ for nothing.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
free_disk start

scripts/install-test-deps.sh
# Built here, before any test, so its progress shows and a failed build stops
# the run at once. Its kubectl (same Kubernetes module as the server) is the
# one every test uses.
scripts/control-plane build
PATH="$(scripts/control-plane bin-dir):$PATH"
export PATH
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
free_disk "after the tests"
# Every fuzz target briefly (20 s) on its corpus: a finding fails the run
# (docs/testing.md, "Fuzzing"). Nightly and cargo-fuzz are installed if missing.
scripts/fuzz ci
