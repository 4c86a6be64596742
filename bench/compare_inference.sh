#!/usr/bin/env bash
# compare_inference.sh: two builds of bench_inference (and bench_unet's train step)
# alternately, same machine, same inputs, so a before/after comparison sees the
# same load. Prints the 1-minute load average before every run.
#   bench/compare_inference.sh BEFORE_BUILD AFTER_BUILD TEACHER.h5 REPO.h5 [ROUNDS]
# e.g. a build of main in /tmp/main/build against build/. Wall times on a loaded
# machine are noisy; the CPU times (all threads) are steadier.
set -euo pipefail
before=$1 after=$2 teacher=$3 repo=$4 rounds=${5:-2}
load() { cut -d' ' -f1 /proc/loadavg; }
for r in $(seq "$rounds"); do
  for side in before after; do
    dir=$before; [ "$side" = after ] && dir=$after
    echo "== round $r, $side ($dir), load $(load)"
    "$dir"/bench_inference --reps 2 --precompute "$teacher" "$repo" --volumes 1 --passes 8
    "$dir"/bench_unet --steps 3 | grep -E "forward|train step|peak RSS"
  done
done
