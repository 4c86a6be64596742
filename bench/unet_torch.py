#!/usr/bin/python3
"""The reference U-Net of issue #2 in PyTorch, timed the same way as bench_unet.

4 levels 16-32-64-128, 3x3x3 convs, instance norm (affine), ReLU, max-pool,
transposed-conv up, 5 classes, 0.5*(Dice incl. background + CE), Adam, batch 1,
64^3 input, 2 threads. Run with Debian's python3-torch:
    /usr/bin/python3 bench/unet_torch.py [--size 64] [--threads 2] [--steps 5]
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True), nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, cin=1, classes=5, widths=(16, 32, 64, 128)):
        super().__init__()
        self.enc = nn.ModuleList()
        c = cin
        for w in widths:
            self.enc.append(block(c, w))
            c = w
        self.up = nn.ModuleList(nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2) for i in range(len(widths) - 1))
        self.dec = nn.ModuleList(block(2 * widths[i], widths[i]) for i in range(len(widths) - 1))
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for i in reversed(range(len(self.dec))):
            x = self.dec[i](torch.cat([skips[i], self.up[i](x)], 1))
        return self.head(x)


def loss_fn(logits, labels):
    probs = logits.softmax(1)
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    dice = (2 * (probs * onehot).sum(dims) + 1e-5) / (probs.sum(dims) + onehot.sum(dims) + 1e-5)
    return 0.5 * ((1 - dice.mean()) + F.cross_entropy(logits, labels))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = UNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    s = a.size
    x = torch.rand(1, 1, s, s, s)
    labels = (torch.arange(s).view(s, 1, 1).expand(s, s, s) * 5 // s).unsqueeze(0).long()

    def step():
        opt.zero_grad()
        loss = loss_fn(net(x), labels)
        loss.backward()
        opt.step()
        return loss.item()

    with torch.no_grad():
        net(x)
    step()
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(a.steps):
            net(x)
    fwd = (time.perf_counter() - t0) / a.steps
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    train = (time.perf_counter() - t0) / a.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"PyTorch {torch.__version__} U-Net benchmark: {s}^3 input, 4 levels 16-32-64-128, 5 classes, batch 1")
    print(f"threads:          {torch.get_num_threads()}")
    print(f"parameters:       {sum(p.numel() for p in net.parameters())}")
    print(f"forward:          {fwd:.3f} s (no_grad)")
    print(f"train step:       {train:.3f} s, loss {loss:.4f}")
    print(f"peak RSS:         {rss:.0f} MB")


if __name__ == "__main__":
    main()
