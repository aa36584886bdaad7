#!/usr/bin/env bash
# Sweeps subscribers for a fixed publisher count until loss passes 1%.
# usage: bench/sfu/sweep.sh [publishers] [video_pps] [seconds]
set -euo pipefail
pubs=${1:-1}; pps=${2:-100}; secs=${3:-8}
bin=${CARGO_TARGET_DIR:-target}/release/examples/sfu_load
cargo build --release --example sfu_load
for subs in 1 2 4 8 16 24 32 48 64; do
  line=$("$bin" --publishers "$pubs" --subscribers "$subs" --video-pps "$pps" --seconds "$secs")
  echo "$line"
  loss=$(sed -E 's/.* loss=([0-9.]+)%.*/\1/' <<<"$line")
  if awk -v l="$loss" 'BEGIN{exit !(l>1.0)}'; then echo "loss passed 1% at subs=$subs"; break; fi
done
