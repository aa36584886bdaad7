#!/usr/bin/env bash
# Lobby benchmark: GET /api/rooms on the real binary (release, SQLite, one worker) with 200
# live rooms and the lobby's usual filters, answered from memory, then the same rooms through
# the SQL path (`status=ALL` with no ended room: the same rooms, from the database), against a
# bare actix-web handler sending a fixed lobby page of the same bytes (bench/lobby/bare.rs),
# and the same handler with an empty page.
# Servers pinned to core 0, wrk to core 1; each measurement 10 s after 2 s of warm-up.
#
#   bench/lobby/run.sh                 # ROOMS=200 CONNECTIONS=32 DURATION=10s
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROOMS=${ROOMS:-200}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
if ! command -v wrk >/dev/null; then
  sudo_if_needed=""
  [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
  $sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq wrk >/dev/null
fi

scripts/build-web >/dev/null
cargo build --release --quiet --bin talkconnect --example lobby_bare
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

. bench/lib.sh

# The usual lobby visits: everything, by language, free seats, popular, language + level, search.
FILTERS=("" "language=vi" "hasSeat=true" "sort=popular" "language=en&level=beginner" "q=tieng")
script() { # prefix → a wrk script cycling through the filters
  local lua="$WORK/$1.lua" list=""
  for f in "${FILTERS[@]}"; do list+="\"/api/rooms?$2$f\","; done
  printf 'local paths = {%s}\nlocal i = 0\nrequest = function()\n  i = i %% #paths + 1\n  return wrk.format("GET", paths[i])\nend\n' "$list" >"$lua"
  echo "$lua"
}
measure() { # name port lua
  taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d2s -s "$3" "http://127.0.0.1:$2/" >/dev/null
  local out rps
  out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$3" "http://127.0.0.1:$2/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" || true)
  printf '%-44s %12s req/s   p99 %8s  %s\n' "$1" "$rps" "$p99" "$errors"
}

PORT=3301
TALKCONNECT__SERVER__PORT=$PORT TALKCONNECT__SERVER__HOST=127.0.0.1 TALKCONNECT__SERVER__WORKERS=1 \
TALKCONNECT__SERVER__DATA_DIR="$WORK/data" TALKCONNECT__RATE_LIMIT__ENABLED=false \
TALKCONNECT__ROOMS__MAX_SEATS_PER_USER=1000 TALKCONNECT__LOG__LEVEL=warn \
  taskset -c "$SERVER_CORE" "$TARGET/release/talkconnect" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_port $PORT
python3 bench/lobby/seed.py "http://127.0.0.1:$PORT" "$ROOMS"
curl -sf "http://127.0.0.1:$PORT/api/rooms" >"$WORK/page.json"
echo "one page: $(wc -c <"$WORK/page.json") bytes, 20 rooms; $(nproc) cores; $(uptime)"
measure "talkconnect, memory (LIVE, 6 filters)" $PORT "$(script memory "")"
measure "talkconnect, SQL path (status=ALL, 6 filters)" $PORT "$(script sql "status=ALL&")"

taskset -c "$SERVER_CORE" "$TARGET/release/examples/lobby_bare" 3302 "$WORK/page.json" &
PIDS+=($!)
wait_port 3302
measure "bare actix-web, the same page" 3302 "$(script bare "")"
printf '{"rooms":[],"nextCursor":null}' >"$WORK/empty.json"
taskset -c "$SERVER_CORE" "$TARGET/release/examples/lobby_bare" 3303 "$WORK/empty.json" &
PIDS+=($!)
wait_port 3303
measure "bare actix-web, an empty page (31 bytes)" 3303 "$(script empty "")"
