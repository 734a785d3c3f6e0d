#!/usr/bin/env bash
# `make run`: a local 3-node ProgLog Raft cluster on loopback with dev certificates.
#
# - certificates: .proglog/certs (written by `proglog certs` if missing)
# - nodes 0..2: gRPC 127.0.0.1:8401-8403, metrics/health 127.0.0.1:9401-9403,
#   data .proglog/data/node-N, logs .proglog/node-N.log
# - node 0 is initialized only when it has no Raft state; nodes 1 and 2 are added as learners
#   and promoted to voters (a no-op when they already are), so a re-run keeps the data.
# - Ctrl-C stops every node cleanly (SIGTERM, graceful shutdown).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
STATE=${PROGLOG_LOCAL_DIR:-$ROOT/.proglog}
CERTS=$STATE/certs
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
NODES=3

for bin in "$PROGLOG" "$NODE"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin: run 'make release' first (make run does it)" >&2
    exit 1
  fi
done

if [[ ! -f $CERTS/ca.pem ]]; then
  echo "writing dev certificates to $CERTS"
  "$PROGLOG" certs --out "$CERTS" >/dev/null
fi

pids=()
stop_all() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    echo
    echo "stopping the cluster..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    echo "stopped; data kept in $STATE/data"
  fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

for ((i = 0; i < NODES; i++)); do
  mkdir -p "$STATE/data/node-$i"
  "$NODE" \
    --data-dir "$STATE/data/node-$i" \
    --bind-addr "127.0.0.1:$((8401 + i))" \
    --advertise-addr "127.0.0.1:$((8401 + i))" \
    --metrics-addr "127.0.0.1:$((9401 + i))" \
    --ordinal "$i" \
    --tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem" \
    --acl-file "$CERTS/acl.csv" \
    --raft true \
    >>"$STATE/node-$i.log" 2>&1 &
  pids+=($!)
done

echo "waiting for the nodes to be healthy..."
for ((i = 0; i < NODES; i++)); do
  for attempt in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$((9401 + i))/healthz" >/dev/null 2>&1; then
      break
    fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "node $i exited; see $STATE/node-$i.log" >&2
      tail -n 20 "$STATE/node-$i.log" >&2
      exit 1
    fi
    if ((attempt == 100)); then
      echo "node $i is not healthy after 20s; see $STATE/node-$i.log" >&2
      exit 1
    fi
    sleep 0.2
  done
done

admin=("$PROGLOG" --addr 127.0.0.1:8401 --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem")
"${admin[@]}" cluster init --if-needed
# The first membership change must wait for a leader and for the initial membership to commit.
for ((i = 1; i < NODES; i++)); do
  for attempt in $(seq 1 50); do
    if out=$("${admin[@]}" cluster add "127.0.0.1:$((8401 + i))" 2>&1); then
      echo "$out" | grep -E "^(added|promoted|node)" || true
      break
    fi
    if ((attempt == 50)); then
      echo "could not add node $i: $out" >&2
      exit 1
    fi
    sleep 0.3
  done
done

client="proglog --addr 127.0.0.1:8401 --ca $CERTS/ca.pem --cert $CERTS/root.pem --key $CERTS/root-key.pem"
cat <<EOT

ProgLog cluster running: 127.0.0.1:8401 127.0.0.1:8402 127.0.0.1:8403 (logs in $STATE/node-N.log)
The proglog binary is $PROGLOG. Try:

  $client produce "hello" "world"
  $client consume --from 0 --follow
  $client cluster status
  $client servers

Ctrl-C stops the cluster; the data in $STATE/data survives a restart.
EOT
wait "${pids[@]}"
