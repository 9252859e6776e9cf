#!/usr/bin/env python3
"""PyTorch's bare training step, the Python side of `dmlviz bench train`'s "bare" column.

One pre-made random batch, the same network and head as dmlviz (torchvision backbone,
global average pool, linear to 128, L2 normalisation), the same loss form (EPSHN:
easy positive, hardest negative not more similar than it, softmax with sigma 0.1) and
SGD lr 0.03 without momentum (the demo preset), P x K = 32 x 3. Weights are random: speed does
not depend on them. After one warm-up step, `--steps` timed steps; prints images/s as
JSON lines, one per (arch, size).

    ~/.venvs/dmlviz-reference/bin/python scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 \
        --size 64 --size 224 --threads 2

Run it back to back with `dmlviz bench train` (same threads, same `nice`), the machine
state stated beside the figures.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
import torchvision


def epshn(embeddings, labels, sigma=0.1):
    """EPSHN in its softmax form, as src/loss/epshn.rs (near-duplicate positives skipped)."""
    z = F.normalize(embeddings, dim=1)
    s = z @ z.t()
    with torch.no_grad():
        sm = s.detach()
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool)
        same = same & ~eye
        other = labels[:, None] != labels[None, :]
        pos_mask = same & (sm <= 0.99999)
        pos_sim, pos_idx = sm.masked_fill(~pos_mask, float("-inf")).max(1)
        neg_mask = other & (sm <= pos_sim[:, None])
        neg_idx = sm.masked_fill(~neg_mask, float("-inf")).argmax(1)
        valid = pos_mask.any(1) & neg_mask.any(1)
    pair = torch.stack([s.gather(1, pos_idx[:, None])[:, 0], s.gather(1, neg_idx[:, None])[:, 0]], 1)
    per_anchor = -torch.log_softmax(pair / sigma, 1)[:, 0]
    return per_anchor[valid].mean() if valid.any() else per_anchor.sum() * 0


class Net(torch.nn.Module):
    """Backbone features, global average pool, linear head."""

    def __init__(self, arch, dim=128):
        super().__init__()
        if arch == "mobilenet_v2":
            self.features = torchvision.models.mobilenet_v2(weights=None).features
            width = 1280
        else:
            r = getattr(torchvision.models, arch)(weights=None)
            self.features = torch.nn.Sequential(*list(r.children())[:-2])
            width = r.fc.in_features
        self.head = torch.nn.Linear(width, dim)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", action="append")
    p.add_argument("--size", action="append", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--classes", type=int, default=32)
    p.add_argument("--per-class", type=int, default=3)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--out-of-place", action="store_true",
                   help="ReLU/ReLU6 with inplace=False (torchvision uses inplace=True)")
    p.add_argument("--bf16", action="store_true",
                   help="forward under torch.autocast('cpu', torch.bfloat16), PyTorch's CPU mixed precision")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    batch = a.classes * a.per_class
    labels = torch.arange(a.classes).repeat_interleave(a.per_class)
    for arch in a.arch or ["mobilenet_v2"]:
        for size in a.size or [64]:
            net = Net(arch).train()
            if a.out_of_place:
                for m in net.modules():
                    if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
                        m.inplace = False
            x = torch.randn(batch, 3, size, size)
            if a.channels_last:
                net = net.to(memory_format=torch.channels_last)
                x = x.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(net.parameters(), lr=0.03)

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                    embeddings = net(x)
                loss = epshn(embeddings.float(), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()

            step()
            start = time.perf_counter()
            for _ in range(a.steps):
                step()
            seconds = time.perf_counter() - start
            print(json.dumps({
                "side": "pytorch", "torch": torch.__version__, "arch": arch, "size": size,
                "batch_size": batch, "threads": a.threads, "channels_last": a.channels_last,
                "in_place_activations": not a.out_of_place, "bf16_autocast": a.bf16,
                "bare_images_per_s": round(a.steps * batch / seconds, 2),
            }), flush=True)


if __name__ == "__main__":
    main()
