#!/usr/bin/env bash
# generate.sh [OUT_DIR]: writes the log.v1 Python stubs (log/v1/log_pb2.py, log_pb2_grpc.py,
# log_pb2.pyi) with grpcio-tools from the venv of scripts/tools/grpc-python.sh into OUT_DIR
# (default clients/python/gen, not committed). Put OUT_DIR on PYTHONPATH to import them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/clients/python/gen}"
VENV="$("$ROOT/scripts/tools/grpc-python.sh")"

rm -rf "$OUT"
mkdir -p "$OUT"
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/proto/proto" \
    --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    "$ROOT/proto/proto/log/v1/log.proto"
