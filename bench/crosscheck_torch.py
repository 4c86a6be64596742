#!/usr/bin/python3
"""Independent check of dualkd's U-Net: rebuild it in PyTorch float64 from a dualkd
checkpoint and compare the logits, the bottleneck tap and every parameter gradient.

    bench/crosscheck_torch.sh           # builds, dumps and compares two configs
    /usr/bin/python3 bench/crosscheck_torch.py DIR [--limit 1e-4]

DIR holds model.h5 (a dualkd checkpoint) and dump.h5 (from build/unet_dump: the
input x, r = dF/dlogits, q = dF/dbottleneck, dualkd's logits, bottleneck and the
gradients of F = sum(logits * r) + sum(bottleneck * q)). The network is rebuilt
from the checkpoint's architecture JSON alone, following docs/numerics.md: convs
with 'same' padding, instance norm (biased variance, affine), ReLU or leaky ReLU,
max-pool with kernel = stride = pool, transposed-conv up with kernel = stride =
pool, concat [skip, up], a 1x1x1 head. Needs Debian's python3-torch and python3-h5py.

The error of a tensor is max|dualkd - torch| / max|torch| (relative to the
tensor's scale, so tiny elements do not dominate). Exit status 1 when the worst
one exceeds --limit.
"""
import argparse
import json
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F


class Net:
    def __init__(self, arch, params):
        self.a = arch
        self.p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}

    def unit(self, prefix, x, kernel):
        pad = tuple(k // 2 for k in kernel)
        w = self.p[prefix + ".conv.weight"]
        if self.a["norm"] == "instance":
            x = F.conv3d(x, w, padding=pad)
            g = self.p[prefix + ".norm.weight"].reshape(-1)
            b = self.p[prefix + ".norm.bias"].reshape(-1)
            x = F.instance_norm(x, weight=g, bias=b, eps=self.a["norm_eps"])
        else:
            x = F.conv3d(x, w, self.p[prefix + ".conv.bias"].reshape(-1), padding=pad)
        slope = self.a["leaky_slope"]
        return F.leaky_relu(x, slope) if slope > 0 else F.relu(x)

    def forward(self, x):
        levels, kern, pool = self.a["levels"], self.a["kernel"], self.a["pool"]
        skips = []
        for l in range(levels):
            x = self.unit(f"enc{l}.block1", x, kern[l])
            x = self.unit(f"enc{l}.block2", x, kern[l])
            if l < levels - 1:
                skips.append(x)
                x = F.max_pool3d(x, pool[l], stride=pool[l])
        bottleneck = x
        for l in reversed(range(levels - 1)):
            up = F.conv_transpose3d(x, self.p[f"dec{l}.up.weight"], self.p[f"dec{l}.up.bias"].reshape(-1),
                                    stride=pool[l])
            x = torch.cat([skips[l], up], 1)
            x = self.unit(f"dec{l}.block1", x, kern[l])
            x = self.unit(f"dec{l}.block2", x, kern[l])
        logits = F.conv3d(x, self.p["head.weight"], self.p["head.bias"].reshape(-1))
        return logits, bottleneck


def rel_error(ours, ref):
    scale = np.abs(ref).max()
    return float(np.abs(ours - ref).max() / (scale if scale > 0 else 1.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--limit", type=float, default=1e-4)
    ap.add_argument("--forward-only", action="store_true",
                    help="compare the logits and the bottleneck only (for an input where "
                         "the gradients jump: a max-pool near a tie)")
    args = ap.parse_args()
    with h5py.File(f"{args.dir}/model.h5", "r") as f:
        arch = json.loads(f.attrs["architecture"])
        params = {k: f["params"][k][()] for k in f["params"]}
    with h5py.File(f"{args.dir}/dump.h5", "r") as f:
        d = {k: f[k][()] for k in ("x", "r", "q", "logits", "bottleneck")}
        grads = {k: f["grad"][k][()] for k in f["grad"]}
    torch.set_num_threads(2)
    net = Net(arch, params)
    logits, bottleneck = net.forward(torch.tensor(d["x"], dtype=torch.float64))
    objective = (logits * torch.tensor(d["r"], dtype=torch.float64)).sum() + \
                (bottleneck * torch.tensor(d["q"], dtype=torch.float64)).sum()
    objective.backward()

    rows = [("logits", rel_error(d["logits"], logits.detach().numpy())),
            ("bottleneck", rel_error(d["bottleneck"], bottleneck.detach().numpy()))]
    if set(grads) != set(net.p):
        print(f"parameter names differ: dualkd {sorted(grads)} vs rebuild {sorted(net.p)}")
        return 1
    if not args.forward_only:
        rows += [(f"grad {k}", rel_error(grads[k], net.p[k].grad.numpy())) for k in sorted(grads)]
    worst = max(rows, key=lambda r: r[1])
    print(f"{args.dir}: {arch['levels']} levels, base width {arch['base_width']}, "
          f"input {list(d['x'].shape)}, {len(grads)} parameter tensors")
    for name, err in rows[:2]:
        print(f"  {name:12s} relative error {err:.2e}")
    if not args.forward_only:
        print(f"  worst of {len(rows) - 2} parameter gradients: {worst[0]} {worst[1]:.2e}"
              if worst[0].startswith("grad") else f"  worst parameter gradient below {worst[1]:.2e}")
    ok = worst[1] <= args.limit
    print(f"  {'PASS' if ok else 'FAIL'}: worst relative error {worst[1]:.2e} (limit {args.limit:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
