#!/usr/bin/env bash
# `make install` as a newcomer runs it, into a scratch prefix: the three binaries land on PATH
# and work from any directory, and bash completions are installed. Reuses the release build
# (`make test` runs this after e2e-pods, which built it).
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
make -s install PREFIX="$scratch/prefix" COMPLETIONS_DIR="$scratch/completions" >/dev/null
export PATH="$scratch/prefix/bin:$PATH"
cd "$scratch"
for binary in proglog proglog-node proglog-operator; do
    [[ "$(command -v "$binary")" == "$scratch/prefix/bin/$binary" ]] || {
        echo "FAIL: $binary is not the installed one: $(command -v "$binary")" >&2
        exit 1
    }
done
proglog --version
proglog-node --version
grep -q 'set-context' "$scratch/completions/proglog" || {
    echo "FAIL: bash completions do not know 'proglog config set-context'" >&2
    exit 1
}
# The README's flow: dev certificates, a context, and no more flags.
export PROGLOG_CONFIG="$scratch/config.toml"
proglog certs --out certs >/dev/null
proglog config set-context local --addr 127.0.0.1:8400 --ca certs/ca.pem \
    --cert certs/root.pem --key certs/root-key.pem >/dev/null
proglog -o json config view | grep -q '"context":"local"' || {
    echo "FAIL: the context is not the current one" >&2
    exit 1
}
echo "install: proglog, proglog-node and proglog-operator on PATH, completions installed"
