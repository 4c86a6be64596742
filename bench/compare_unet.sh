#!/usr/bin/env bash
# compare_unet.sh: the reference U-Net of issue #2 in dualkd (forward, train step,
# peak RSS; then each conv layer's GFLOP/s) and in PyTorch, back to back, same
# shapes and threads. Needs a built tree (scripts/bootstrap) and Debian's
# python3-torch (apt-get install python3-torch) for the second half.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
"$build"/bench_unet "$@"
echo
"$build"/bench_conv
echo
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 bench/unet_torch.py "$@"
else
  echo "PyTorch not installed: apt-get install python3-torch to compare"
fi
