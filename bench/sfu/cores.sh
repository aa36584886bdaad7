#!/usr/bin/env bash
# How forwarding scales from one SFU thread to two, each on its own core and held to the same
# share of it (cgroup v1 `cpu`, so run as root): on a 2-core machine the load generator needs
# most of a core itself, so whole cores cannot be given to the SFU; two threads capped at P %
# on cores 0 and 1 stand for two cores against one thread capped at P % on core 0.
#
# For each thread count, 4 rooms of 2 publishers + 16 subscribers (2 rooms per thread with
# two), the publishers' VP8 rate rises by STEP until loss passes 1 % in two runs in a row (near
# the knee one run in a few passes it by chance: a capped thread is held off for milliseconds at
# a time); the figure is the highest forwarded rate with loss below 1 %. Prints every run and,
# for each round, the ratio.
#
# usage: bench/sfu/cores.sh
#   P=45 (% of a core per SFU thread), STEP=20 (VP8 pps), SECONDS_=8, REPEAT=1 (rounds),
#   START_1=100 / START_2=2×START_1 (the first VP8 rate with one / two threads)
set -euo pipefail
cd "$(dirname "$0")/../.."
P=${P:-45}; STEP=${STEP:-20}; SECONDS_=${SECONDS_:-8}; REPEAT=${REPEAT:-1}
START_1=${START_1:-100}; START_2=${START_2:-$((START_1 * 2))}
ROOMS=${ROOMS:-4}; PUBS=${PUBS:-2}; SUBS=${SUBS:-16}
. scripts/env
bin="$CARGO_TARGET_DIR/release/examples/sfu_load"
cargo build --release --example sfu_load >&2

field() { sed -E "s/.* $1=([0-9.]+)%?.*/\1/" <<<"$2"; }

declare -A best
for round in $(seq "$REPEAT"); do
  for threads in 1 2; do
    start="START_$threads"; pps=${!start}; top=0; failed=0
    while [ "$failed" -lt 2 ]; do
      line=$("$bin" --rooms "$ROOMS" --publishers "$PUBS" --subscribers "$SUBS" \
        --video-pps "$pps" --seconds "$SECONDS_" --sfu-threads "$threads" --spread \
        --load-threads 2 --sfu-cpu-percent "$P")
      echo "threads=$threads cap=$P% video_pps=$pps $line"
      if awk -v l="$(field loss "$line")" 'BEGIN{exit !(l>1.0)}'; then
        failed=$((failed + 1))
      else
        failed=0
        top=$(awk -v a="$top" -v b="$(field forwarded_pps "$line")" 'BEGIN{print (b > a) ? b : a}')
      fi
      pps=$((pps + STEP))
    done
    echo "round $round: $threads thread(s) at $P % each: $top forwarded pps below 1 % loss"
    best[$round,$threads]=$top
  done
  awk -v a="${best[$round,1]}" -v b="${best[$round,2]}" \
    'BEGIN{ if (a > 0) printf "round %d: two threads / one = %.2f\n", '"$round"', b / a }'
done
