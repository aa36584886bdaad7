#!/usr/bin/env bash
# Realtime benchmark: our Socket.IO layer (examples/socketio_conformance --bench-app) against the
# reference Node socket.io server (bench/realtime/node-server.mjs, websocket transport), same
# app, same Rust load generator (bench/realtime/loadgen.rs). Server pinned to core 0, load
# generator to core 1; each measurement starts a fresh server process. Idle memory is also
# measured for two floors: bare actix-ws, and websockets read outside actix-http
# (bench/realtime/lean_ws.rs), whose cost for plain HTTP wrk then measures.
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

cargo build --release --quiet --example socketio_conformance --example realtime_loadgen --example actix_ws_floor \
  --example lean_ws_floor --example lobby_bare
BODY=$(mktemp)
printf '{"rooms":[],"nextCursor":null}' >"$BODY"
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
    lean) taskset -c "$SERVER_CORE" "$BIN/lean_ws_floor" "$PORT" "$BODY" 2>/dev/null & ;;
    bare) taskset -c "$SERVER_CORE" "$BIN/lobby_bare" "$PORT" "$BODY" 2>/dev/null & ;;
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

trap 'stop; rm -f "$BODY"' EXIT

for kind in rust node floor lean; do
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

# What reading the head outside actix-http costs plain HTTP (bench/realtime/lean_ws.rs): the
# same actix-web app behind the lean listener and behind HttpServer (lobby_bare), with
# keep-alive (the head is read once per connection) and with a new connection per request.
if command -v wrk >/dev/null; then
  for kind in bare lean; do
    for mode in keep-alive close; do
      start "$kind"; sleep 1
      header=(); [ "$mode" = close ] && header=(-H "Connection: close")
      taskset -c "$LOAD_CORE" wrk -t1 -c32 -d2s "${header[@]}" "http://127.0.0.1:$PORT/" >/dev/null
      rps=$(taskset -c "$LOAD_CORE" wrk -t1 -c32 -d10s "${header[@]}" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
      echo "== $kind: GET / ($mode): $rps req/s"
      stop
    done
  done
else
  echo "(wrk is missing: the HTTP cost of the lean listener is not measured; apt-get install wrk)"
fi
