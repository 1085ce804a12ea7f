#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages, once, and fails
# loudly if anything is still missing afterwards. Needs root.
set -euo pipefail

# command -> Debian package that provides it
declare -A NEEDED=(
  [ip]=iproute2
  [bird]=bird2
  [birdc]=bird2
  [ping]=iputils-ping
  [jq]=jq
  [curl]=curl
  [prometheus]=prometheus
  [promtool]=prometheus
  # The control plane (scripts/control-plane): certificates, the API bridge
  # into node namespaces, free ports.
  [openssl]=openssl
  [socat]=socat
  [python3]=python3
  [setsid]=util-linux
)

missing_packages() {
  for cmd in "${!NEEDED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || echo "${NEEDED[$cmd]}"
  done | sort -u
}

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: the tests create network namespaces and need root" >&2
  exit 1
fi

pkgs=$(missing_packages)
if [ -n "$pkgs" ]; then
  echo "install-test-deps: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# Go builds the Kubernetes control plane the end-to-end tests run on
# (scripts/control-plane build). It is not a Debian package here: the
# machine carries Go >= 1.24.
if ! command -v go >/dev/null 2>&1; then
  echo "install-test-deps: Go (>= 1.24) is missing; it builds the test control plane from its Go modules" >&2
  exit 1
fi

still=$(missing_packages)
if [ -n "$still" ]; then
  echo "install-test-deps: still missing after apt-get install: $still" >&2
  exit 1
fi
