#!/usr/bin/env bash
# Side by side: the TURN relay in the talkconnect binary and Debian's coturn (turnserver) on
# the same load (bench/turn/load.rs), back to back for each rate. Each relay runs alone in its
# process pinned to core 0, the load generator (clients and the echoing sink) on core 1; both
# relays are up for the whole run, on loopback, UDP only, no TLS/DTLS.
#
# usage: bench/turn/run.sh [allocations] [seconds] [rates…]
#   defaults: 20 8 5000 10000 20000 30000 40000 50000
#   MODE=channel (default; ChannelData, as browsers send media) or MODE=send (Send indications)
#   ONLY=ours or ONLY=coturn runs one side; PAYLOAD=1200 bytes per packet; COTURN_ARGS adds
#   options to turnserver's command line; NO_BUILD=1 skips the cargo build.
#   BIND_IP=127.0.0.1 (default) is where both relays, the SFU port and the sink live; this
#   host's own address (e.g. BIND_IP=$(hostname -I | cut -d' ' -f1)) makes the peer a public
#   address to the relays, as in production (traffic still goes over the loopback device);
#   the clients then send from 127.0.0.1, so no client shares the peer's address.
#   TALKCONNECT_BIN runs another build of the binary (e.g. one from before a change).
# Needs: Debian's `coturn` (installed with apt-get when missing; needs root), taskset, curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
allocs=${1:-20}; secs=${2:-8}
shift $(( $# < 2 ? $# : 2 ))
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(5000 10000 20000 30000 40000 50000)
mode=${MODE:-channel}; only=${ONLY:-}; payload=${PAYLOAD:-1200}; ip=${BIND_IP:-127.0.0.1}
client_ip=127.0.0.1
# The load generator's errors.
logdir=${LOG_DIR:-/tmp/turn-bench}; mkdir -p "$logdir"; : >"$logdir/load.log"
secret=turn-bench-secret
# Ports of their own: the relays' listening ports, relayed ranges and the sink (which sits in
# the SFU media "range" of our server, a single port, so our relay's SFU-mode policy lets it).
ours_port=47590; coturn_port=47591; sink_port=47592; http_port=47593
ours_relay=(50000 50999); coturn_relay=(51000 51999)

if ! command -v turnserver >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y coturn
fi

cd "$root"
target=${CARGO_TARGET_DIR:-target}
scripts/build-web >/dev/null
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin talkconnect --example turn_load
bin=$target/release

tmp=$(mktemp -d)
ours_pid=; coturn_pid=
# Both relays go whatever happened (a relay left running would share its port with the next
# run's: coturn binds with SO_REUSEPORT, and the kernel would split the load between them).
cleanup() {
  for pid in $ours_pid $coturn_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true; rm -rf "$tmp"
}
trap cleanup EXIT

# Ours: SFU mode (the relay reaches only the SFU's media ports: here the sink's), no per-user
# byte budget in the way (each allocation is its own user; user_kbps far above the load).
env -i PATH="$PATH" HOME="$tmp" RUST_LOG=warn NO_COLOR=1 \
  TALKCONNECT__SERVER__HOST=127.0.0.1 TALKCONNECT__SERVER__PORT=$http_port \
  TALKCONNECT__SERVER__DATA_DIR="$tmp/data" \
  TALKCONNECT__DATABASE__URL="sqlite://$tmp/talkconnect.db" \
  TALKCONNECT__MEDIA__MODE=sfu \
  TALKCONNECT__SFU__BIND_IP="$ip" TALKCONNECT__SFU__ALLOW_LOOPBACK=true \
  TALKCONNECT__SFU__UDP_PORT_MIN=$sink_port TALKCONNECT__SFU__UDP_PORT_MAX=$sink_port \
  TALKCONNECT__TURN__ENABLED=true TALKCONNECT__TURN__LISTEN_IP="$ip" \
  TALKCONNECT__TURN__UDP_PORT=$ours_port TALKCONNECT__TURN__TCP_PORT=0 \
  TALKCONNECT__TURN__ON_HTTPS_PORT=false \
  TALKCONNECT__TURN__RELAY_PORT_MIN="${ours_relay[0]}" TALKCONNECT__TURN__RELAY_PORT_MAX="${ours_relay[1]}" \
  TALKCONNECT__TURN__SECRET=$secret TALKCONNECT__TURN__USER_KBPS=4000000 \
  TALKCONNECT__TURN__MAX_ALLOCATIONS_PER_USER=1000 \
  taskset -c 0 "${TALKCONNECT_BIN:-$bin/talkconnect}" >"$tmp/ours.log" 2>&1 &
ours_pid=$!

# coturn: shared secret, loopback peers allowed, UDP only, its own relay range, no database
# or CLI, its default threading (pinned to the same one core).
# shellcheck disable=SC2086  # COTURN_ARGS is split on purpose
turnserver -n --listening-ip="$ip" --relay-ip="$ip" --listening-port="$coturn_port" \
  --min-port="${coturn_relay[0]}" --max-port="${coturn_relay[1]}" --realm=talkconnect \
  --use-auth-secret --static-auth-secret=$secret --allow-loopback-peers \
  --no-tcp --no-tls --no-dtls --no-tcp-relay --no-cli --no-stun \
  --userdb="$tmp/turndb" --pidfile="$tmp/turnserver.pid" --log-file="$tmp/coturn.log" --simple-log \
  ${COTURN_ARGS:-} >/dev/null 2>&1 &
coturn_pid=$!
taskset -a -p -c 0 "$coturn_pid" >/dev/null

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null || { cat "$tmp/ours.log"; exit 1; }
sleep 1
kill -0 "$coturn_pid" 2>/dev/null || { cat "$tmp/coturn.log"; exit 1; }
# coturn starts its threads after a moment: pin them all once they exist.
taskset -a -p -c 0 "$coturn_pid" >/dev/null
echo "# talkconnect $(git -C "$root" rev-parse --short HEAD) pid $ours_pid; $(turnserver --version 2>/dev/null | head -1 || true) pid $coturn_pid ($(find "/proc/$coturn_pid/task" -mindepth 1 -maxdepth 1 | wc -l) threads)"
echo "# $allocs allocations, $mode, relays and sink on $ip, $payload-byte payload, ${secs} s windows; $(nproc) cores: relays on core 0, load on core 1"

for rate in "${rates[@]}"; do
  echo "# rate=$rate $(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/loadavg=/')"
  for side in ours coturn; do
    [ -n "$only" ] && [ "$only" != "$side" ] && continue
    if [ "$side" = ours ]; then port=$ours_port; pid=$ours_pid; else port=$coturn_port; pid=$coturn_pid; fi
    line=$(taskset -c 1 "$bin/examples/turn_load" --label "$side" --server "$ip:$port" --sink-ip "$ip" --client-ip "$client_ip" \
      --secret "$secret" --server-pid "$pid" --sink-port "$sink_port" --allocations "$allocs" \
      --rate "$rate" --payload "$payload" --seconds "$secs" --mode "$mode" 2>>"$logdir/load.log" || true)
    [ -n "$line" ] || line="$side failed: $(grep -m1 panicked -A1 "$logdir/load.log" | tail -1)"
    echo "$line"
  done
done
