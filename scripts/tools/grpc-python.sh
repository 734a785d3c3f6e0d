#!/usr/bin/env bash
# grpc-python.sh: makes (once) a Python venv with the packages of clients/python/requirements.txt
# (grpcio, grpcio-tools, protobuf from PyPI) and prints the venv's directory.
#
# Output (cached, keyed by the requirements file's content, never inside the repository):
#   $PROGLOG_CACHE_DIR/python/grpc-<sha256 of requirements.txt, 16 hex>/
# A stamp file inside records the requirements it was made from; it is written last, so an
# interrupted install is never mistaken for a finished one and is redone from scratch.
#
# Environment:
#   PROGLOG_CACHE_DIR   cache root (default $HOME/.cache/proglog)
#   PYTHON              interpreter to make the venv with (default python3; needs 3.9+)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQUIREMENTS="$ROOT/clients/python/requirements.txt"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
PYTHON="${PYTHON:-python3}"

log() { printf '[tools/grpc-python] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is required; it is not on PATH"
[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"

key="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
VENV="$PROGLOG_CACHE_DIR/python/grpc-$key"

if [[ -f "$VENV/.stamp" ]] && cmp -s "$VENV/.stamp" "$REQUIREMENTS" && [[ -x "$VENV/bin/python" ]]; then
    printf '%s\n' "$VENV"
    exit 0
fi

log "installing $(grep -cvE '^\s*(#|$)' "$REQUIREMENTS") packages from PyPI into $VENV"
started=$SECONDS
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
# Binary wheels only: building grpcio from source takes most of an hour on 2 cores.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$REQUIREMENTS" >&2 || die "pip install -r $REQUIREMENTS failed"
cp "$REQUIREMENTS" "$VENV/.stamp"
log "installed in $((SECONDS - started))s"
printf '%s\n' "$VENV"
