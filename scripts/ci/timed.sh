#!/usr/bin/env bash
# Runs a command and prints how long it took, so a CI log says where its minutes went:
#   scripts/ci/timed.sh <label> <command...>
set -euo pipefail
label="$1"
shift
start=$(date +%s)
status=0
"$@" || status=$?
echo "[timed] $label: $(($(date +%s) - start)) s (exit $status)" >&2
exit "$status"
