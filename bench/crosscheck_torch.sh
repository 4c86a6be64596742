#!/usr/bin/env bash
# crosscheck_torch.sh: dualkd's U-Net against an independent PyTorch float64
# rebuild (bench/crosscheck_torch.py): logits, bottleneck and every parameter
# gradient, for the reference config and an anisotropic one, under the BLAS
# kernel given by OPENBLAS_CORETYPE (or OpenBLAS's own choice). A third case,
# the reference config on 8 x 48 x 48, runs the fused Winograd path's tile 4
# (16 channels on 48² planes) and compares the forward only: at that size a
# max-pool window is near a tie, so the float64 gradients themselves move by 2e-2
# when the input moves by 1e-7 of itself, and no float32 gradient can match them
# (the tile's forward and data gradient are checked against float64 in
# tests/test_winograd.c). Needs a built
# tree (scripts/bootstrap) and Debian's python3-torch and python3-h5py.
# Exit status 1 when any worst relative error exceeds 1e-4.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
if ! /usr/bin/python3 -c "import torch, h5py" 2>/dev/null; then
  echo "crosscheck_torch: needs python3-torch and python3-h5py (apt-get install python3-torch python3-h5py)" >&2
  exit 2
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
status=0
mkdir -p "$dir/reference" "$dir/anisotropic" "$dir/wide"
"$build"/unet_dump reference "$dir/reference" --batch 2 --shape 16 16 16
"$build"/unet_dump anisotropic "$dir/anisotropic" --batch 2 --shape 4 24 16
"$build"/unet_dump reference "$dir/wide" --batch 1 --shape 8 48 48
for c in reference anisotropic; do
  /usr/bin/python3 bench/crosscheck_torch.py "$dir/$c" || status=1
done
/usr/bin/python3 bench/crosscheck_torch.py --forward-only "$dir/wide" || status=1
exit $status
