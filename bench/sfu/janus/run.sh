#!/usr/bin/env bash
# Side by side: our SFU (sfu_load) and Janus's VideoRoom (sfu_janus_load) on the same load,
# back to back for each subscriber count, until both pass 1 % loss.
# SFU on core 0, load generator on core 1 (taskset), release builds.
#
# usage: bench/sfu/janus/run.sh [publishers] [video_pps] [seconds] [subscriber counts…]
#   defaults: 4 200 8 1 4 8 16 32 64 96 128
#   ONLY=janus or ONLY=ours runs one side; JANUS_PORT (8088) is the HTTP API port;
#   JANUS_EVENT_LOOPS=N gives Janus N shared event loops (default 1, like our SFU's single
#   runtime thread); JANUS_EVENT_LOOPS=0 keeps Janus's own default, a thread per handle.
#   LOAD_ARGS adds flags to both load tools, e.g. LOAD_ARGS=--simulcast (publishers send three
#   simulcast layers; each subscriber is forwarded one).
# Needs: Debian's `janus` package (installed with apt-get when missing; needs root), taskset.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
pubs=${1:-4}; pps=${2:-200}; secs=${3:-8}
shift $(( $# < 3 ? $# : 3 ))
subs_list=("$@"); [ ${#subs_list[@]} -gt 0 ] || subs_list=(1 4 8 16 32 64 96 128)
port=${JANUS_PORT:-8088}
# Janus gathers no candidates on loopback interfaces: Janus and the clients use the host's own
# address (traffic between local addresses still goes over the loopback device).
hostip=${HOST_IP:-$(ip -4 -o route get 1.1.1.1 | sed -E 's/.* src ([0-9.]+).*/\1/')}
only=${ONLY:-}
read -r -a extra <<<"${LOAD_ARGS:-}"
# The tools' logs (stderr; webrtc-rs complains when queues overflow under overload).
logdir=${LOG_DIR:-/tmp/sfu-janus-bench}; mkdir -p "$logdir"

if ! command -v janus >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y janus
fi
libdir=$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_videoroom.so$')")
libdir=$(dirname "$libdir")

cd "$root"
cargo build --release --example sfu_load --example sfu_janus_load
bin=${CARGO_TARGET_DIR:-target}/release/examples

# Janus with our configs from a temp folder (not /etc).
tmp=$(mktemp -d)
janus_pid=
cleanup() { [ -n "$janus_pid" ] && kill "$janus_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
for f in "$here"/*.jcfg; do
  loops=()
  [ "${JANUS_EVENT_LOOPS:-1}" != 0 ] && loops=(-e "s|#event_loops = N|event_loops = ${JANUS_EVENT_LOOPS:-1}|")
  sed -e "s|@LIBDIR@|$libdir|g" -e "s|@PORT@|$port|g" -e "s|@HOSTIP@|$hostip|g" "${loops[@]}" \
    "$f" > "$tmp/$(basename "$f")"
done
if [ "$only" != ours ]; then
  taskset -c 0 janus -C "$tmp/janus.jcfg" -F "$tmp" -L "$tmp/janus.log" -N &
  janus_pid=$!
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/janus/info" >/dev/null && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/janus/info" >/dev/null || { cat "$tmp/janus.log"; exit 1; }
  echo "# $(janus --version 2>/dev/null | head -1), pid $janus_pid"
fi

passed() { awk -v l="$(sed -E 's/.* loss=([0-9.]+)%.*/\1/' <<<"$1")" 'BEGIN{exit !(l>1.0)}'; }
ours_done=; janus_done=
[ "$only" = janus ] && ours_done=1
[ "$only" = ours ] && janus_done=1
for subs in "${subs_list[@]}"; do
  echo "# subs=$subs $(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/loadavg=/')"
  if [ -z "$ours_done" ]; then
    line=$("$bin/sfu_load" --publishers "$pubs" --subscribers "$subs" --video-pps "$pps" \
      --seconds "$secs" "${extra[@]}" 2>>"$logdir/ours.log" | grep 'pubs=' | tail -1 || true)
    [ -n "$line" ] || line="failed (see $logdir/ours.log) loss=100%"
    echo "ours $line"
    if passed "$line"; then echo "# ours: loss passed 1% at subs=$subs"; ours_done=1; fi
  fi
  if [ -z "$janus_done" ]; then
    line=$(taskset -c 1 "$bin/sfu_janus_load" --janus-url "http://127.0.0.1:$port/janus" \
      --janus-pid "$janus_pid" --client-ip "$hostip" --no-pin --publishers "$pubs" \
      --subscribers "$subs" --video-pps "$pps" --seconds "$secs" "${extra[@]}" \
      2>>"$logdir/janus.log" \
      | grep 'pubs=' | tail -1 || true)
    [ -n "$line" ] || line="janus failed (see $logdir/janus.log) loss=100%"
    echo "$line"
    if passed "$line"; then echo "# janus: loss passed 1% at subs=$subs"; janus_done=1; fi
  fi
  [ -n "$ours_done" ] && [ -n "$janus_done" ] && break
done
