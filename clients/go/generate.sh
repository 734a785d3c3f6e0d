#!/usr/bin/env bash
# generate.sh [--check]: regenerates gen/ (committed, so `go get`/`go build` need no codegen) from
# proto/proto/log/v1 with buf and the pinned protoc-gen-go / protoc-gen-go-grpc
# (scripts/tools/buf.sh builds them once from the Go module proxy).
# --check: generate into a temporary directory and fail if gen/ differs (scripts/client-tests.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUF="$ROOT/scripts/tools/buf.sh"
cd "$ROOT"

if [[ "${1:-}" == "--check" ]]; then
    fresh="$(mktemp -d)"
    trap 'rm -rf "$fresh"' EXIT
    "$BUF" generate --template clients/go/buf.gen.yaml --output "$fresh"
    if ! diff -ru clients/go/gen "$fresh/clients/go/gen"; then
        echo "clients/go/gen is stale: run clients/go/generate.sh and commit the result" >&2
        exit 1
    fi
    echo "clients/go/gen is up to date"
    exit 0
fi

rm -rf clients/go/gen
"$BUF" generate --template clients/go/buf.gen.yaml
