#!/usr/bin/env bash
# Capacity table: how many people in rooms of 6 one server carries, through the real binary
# (release, SQLite, default settings but rate limits and the media sessions per address off,
# every client being on 127.0.0.1, and the SFU on loopback) and its
# gateway, with webrtc-rs clients (bench/capacity/load.rs) in a second process. The server
# is pinned to core 0 and the clients to core 1; each row starts a fresh server.
#
#   bench/capacity/run.sh                       # audio-only and video sweeps
#   AUDIO_ROOMS="10 20" VIDEO_ROOMS="2 4" VIDEO_PPS=100 MEASURE_SECONDS=10 bench/capacity/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
AUDIO_ROOMS=${AUDIO_ROOMS-"10 20 40 60 80"}
VIDEO_ROOMS=${VIDEO_ROOMS-"2 4 6 8 10 12"}
VIDEO_PPS=${VIDEO_PPS:-100}
PER_ROOM=${PER_ROOM:-6}
MEASURE_SECONDS=${MEASURE_SECONDS:-10}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

ulimit -n "$(ulimit -Hn)"
. bench/lib.sh
scripts/build-web >/dev/null
cargo build --release --quiet --bin talkconnect --example capacity_load
WORK=$(mktemp -d)
SERVER=
stop() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  SERVER=
}
trap 'stop; rm -rf "$WORK"' EXIT

PORT=3500
start() {
  PORT=$((PORT + 1))
  rm -rf "$WORK/data"
  TALKCONNECT__SERVER__PORT=$PORT TALKCONNECT__SERVER__HOST=127.0.0.1 \
  TALKCONNECT__SERVER__DATA_DIR="$WORK/data" TALKCONNECT__RATE_LIMIT__ENABLED=false \
  TALKCONNECT__SFU__BIND_IP=127.0.0.1 TALKCONNECT__SFU__ALLOW_LOOPBACK=true \
  TALKCONNECT__SFU__UDP_PORT_MIN=40000 TALKCONNECT__SFU__UDP_PORT_MAX=41999 \
  TALKCONNECT__ROOMS__MAX_SEATS_PER_USER=1000 TALKCONNECT__MEDIA__MAX_SESSIONS_PER_IP=100000 \
  TALKCONNECT__LOG__LEVEL=warn \
    taskset -c "$SERVER_CORE" "$TARGET/release/talkconnect" >"$WORK/server-$PORT.log" 2>&1 &
  SERVER=$!
  wait_port "$PORT" "the server (log: $WORK/server-$PORT.log)"
}

run() { # rooms video_pps
  start
  # webrtc-rs logs ICE checks that race the nomination as errors: not the measurement's.
  RUST_LOG=off taskset -c "$LOAD_CORE" "$TARGET/release/examples/capacity_load" --url "http://127.0.0.1:$PORT" \
    --server-pid "$SERVER" --rooms "$1" --per-room "$PER_ROOM" --video-pps "$2" \
    --seconds "$MEASURE_SECONDS" || echo "rooms=$1 video_pps=$2: the load tool failed"
  stop
}

echo "$(nproc) cores; $(uptime)"
for rooms in $AUDIO_ROOMS; do run "$rooms" 0; done
for rooms in $VIDEO_ROOMS; do run "$rooms" "$VIDEO_PPS"; done
