#!/usr/bin/env bash
# A model and an index the image makes offline in under a minute, for the image test (not the demo):
# COUNT generated images -> corpus `seed` -> tiny-clip trained 60 steps with a caption head -> index
# `seed`. Run again with a larger COUNT to publish the next version of the index.
# Usage (in the image): seed.sh [COUNT]
set -euo pipefail
count=${1:-24}
home=${XMODAL_HOME:?XMODAL_HOME is not set}
here=$(dirname "$0")
# a tiny model: one thread is fastest, and OpenMP threads spinning on a busy host are many times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python "$here/seed.py" "$home/seed-media" --count "$count"
if [ ! -f "$home/models/seed/model.safetensors" ]; then
  xmodal data import "$home/seed-media" --name seed
  xmodal train --model tiny-clip --data seed --out "$home/models/seed" \
    --task contrastive=1 --task caption=1 --steps 60 --batch-size 8
fi
xmodal index build --model "$home/models/seed" --dir "$home/seed-media" --name seed --no-progress
