#!/usr/bin/env bash
# `make down`: removes what `make up` started (the kind cluster, or the local cluster with every
# process, mount, link and iptables rule it made). The dev certificates in .proglog/ stay.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
mode="$(cat "$PROGLOG_CACHE_DIR/up-mode" 2>/dev/null || echo local)"
if [[ "$mode" == kind ]]; then
    kind delete cluster --name proglog
else
    "$ROOT/scripts/local-cluster/down.sh"
fi
rm -f "$PROGLOG_CACHE_DIR/up-mode"
