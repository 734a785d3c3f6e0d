#!/usr/bin/env bash
# `make test-faults`: one fault-injection run of the proglog-faults harness against real
# proglog-node processes (3, or 5 with `--nodes 5`), each in its own network namespace (see
# faults/README.md); the nodes must be built with `--features failpoints` (power cuts). Needs root
# (namespaces, veth, iptables). Arguments are passed to proglog-faults, e.g. `--seed 42`,
# `--duration 60s`; so is $FAULTS_ARGS, after them (it wins). Binaries: $FAULTS_BIN_DIR [default: the debug target
# dir]. Exit status: 0 no anomaly, 1 anomalies, 2 harness error.
set -euo pipefail

BIN_DIR=${FAULTS_BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/debug}

if [[ $(id -u) -ne 0 ]]; then
  echo "test-faults needs root (network namespaces, veth pairs, iptables): run it as root or with sudo" >&2
  exit 2
fi
for tool in ip iptables tc; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-faults needs '$tool' (Debian: apt-get install iproute2 iptables)" >&2
    exit 2
  fi
done
for bin in proglog-faults proglog-node proglog; do
  if [[ ! -x $BIN_DIR/$bin ]]; then
    echo "$BIN_DIR/$bin is missing: cargo build -p proglog-node --features failpoints --bins && cargo build -p proglog-cli -p proglog-faults --bins" >&2
    exit 2
  fi
done

# shellcheck disable=SC2086 # FAULTS_ARGS is a list of flags, split on purpose
exec "$BIN_DIR/proglog-faults" --bin-dir "$BIN_DIR" "$@" ${FAULTS_ARGS:-}
