#!/usr/bin/env bash
# Realtime benchmark: our Socket.IO layer (examples/socketio_conformance --bench-app) against the
# reference Node socket.io server (bench/realtime/node-server.mjs, websocket transport), same
# app, same Rust load generator (bench/realtime/loadgen.rs). Server pinned to core 0, load
# generator to core 1; each measurement starts a fresh server process.
#
#   bench/realtime/run.sh            # everything (≈ 3 minutes)
#   IDLE_CONNS=2000 bench/realtime/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/examples
IDLE_CONNS=${IDLE_CONNS:-10000}
ROOM_CLIENTS=${ROOM_CLIENTS:-1000}
ROOM_RATES=${ROOM_RATES:-"20 40"}
ACK_CLIENTS=${ACK_CLIENTS:-1000}
ACK_RATE=${ACK_RATE:-2000}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# 10k sockets need 10k descriptors on each side.
ulimit -n "$(ulimit -Hn)"
. bench/lib.sh
echo "fd limit: $(ulimit -n); $(uptime)"

cargo build --release --quiet --example socketio_conformance --example realtime_loadgen --example actix_ws_floor
(cd bench/realtime && npm ci --silent --no-audit --no-fund)

PORT=3100
SERVER_PID=

start() { # kind
  PORT=$((PORT + 1))
  case $1 in
    rust) taskset -c "$SERVER_CORE" "$BIN/socketio_conformance" --port "$PORT" --workers 1 --bench-app \
            --rate 0 --ping-interval-ms 25000 --ping-timeout-ms 20000 2>/dev/null & ;;
    node) taskset -c "$SERVER_CORE" node bench/realtime/node-server.mjs "$PORT" 2>/dev/null & ;;
    floor) taskset -c "$SERVER_CORE" "$BIN/actix_ws_floor" "$PORT" 2>/dev/null & ;;
  esac
  SERVER_PID=$!
  wait_port "$PORT" "server $1"
}

stop() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

load() { # args…
  taskset -c "$LOAD_CORE" "$BIN/realtime_loadgen" --url "ws://127.0.0.1:$PORT" --server-pid "$SERVER_PID" "$@"
}

trap stop EXIT

for kind in rust node floor; do
  echo "== $kind: idle, $IDLE_CONNS sockets"
  start "$kind"; sleep 1; load idle --conns "$IDLE_CONNS"; stop
done

for kind in rust node; do
  for rate in $ROOM_RATES; do
    echo "== $kind: broadcast to a $ROOM_CLIENTS-socket room at $rate msg/s"
    start "$kind"; sleep 1; load broadcast --clients "$ROOM_CLIENTS" --rate "$rate"; stop
  done
  echo "== $kind: acks, $ACK_CLIENTS clients, $ACK_RATE emits/s"
  start "$kind"; sleep 1; load ack --clients "$ACK_CLIENTS" --rate "$ACK_RATE"; stop
done
