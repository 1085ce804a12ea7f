#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the system packages the tests
# use (BIRD, iproute2, ...), then formatting, lints and every test. Run as root:
# the integration tests build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
