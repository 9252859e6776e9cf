"""A dmlviz run's network in PyTorch: the torchvision backbone plus dmlviz's embedding head,
loaded from the run's `phase-P/checkpoint.safetensors`, with dmlviz's evaluation transform.

Needs torch, torchvision, safetensors and Pillow (and Python 3.11 for tomllib). From the
repository root:

    python -c "import sys; sys.path.insert(0, 'scripts'); import dmlviz_torch as d; print(d.embed('runs/demo', ['IMG.png'])[0, :6])"
    python -c "import sys; sys.path.insert(0, 'scripts'); import dmlviz_torch as d; print(d.stored('runs/demo', 'IMG.png')[:6])"

The first line embeds an image in PyTorch; the second prints the embedding dmlviz stored
for the same image (a training or test image of the run, in `embeddings.safetensors`).
`python scripts/dmlviz_torch.py RUN` compares every stored embedding with PyTorch's and
prints the largest difference.

The network (docs/DESIGN.md, "Imported runs"): torchvision's resnet18/resnet50/mobilenet_v2
without its classifier, the last convolution's activation averaged over space, then
`linear` (+ `mlp.0` → ReLU → `mlp.2` for the skip-connection head), optionally a 1-D
BatchNorm `bn`, then L2 normalisation when the distance is cosine. The transform: RGB,
resize to resize × resize (bilinear with antialiasing), centre crop image_size, ImageNet
mean/std. dmlviz resizes with its own bilinear filter, so an image that needs resizing
may differ by a pixel's rounding; one already resize × resize is the same input exactly.
"""

import os
import sys
import tomllib

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


class EmbeddingNet(torch.nn.Module):
    """Backbone (torchvision names under `backbone.`) and head (under `head.`)."""

    def __init__(self, arch, embedding_dim, batch_norm, skip_connection, normalize):
        super().__init__()
        net = getattr(torchvision.models, arch)()
        if arch == "mobilenet_v2":
            channels = 1280
            del net.classifier
        else:
            channels = net.fc.in_features
            del net.fc
        self.arch = arch
        self.backbone = net
        self.head = torch.nn.Module()
        self.head.linear = torch.nn.Linear(channels, embedding_dim)
        if skip_connection:
            self.head.mlp = torch.nn.Sequential(
                torch.nn.Linear(channels, channels), torch.nn.ReLU(), torch.nn.Linear(channels, embedding_dim)
            )
        if batch_norm:
            self.head.bn = torch.nn.BatchNorm1d(embedding_dim)
        self.normalize = normalize

    def last_conv(self, x):
        n = self.backbone
        if self.arch == "mobilenet_v2":
            return n.features(x)
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward(self, x):
        pooled = self.last_conv(x).mean(dim=(2, 3))
        e = self.head.linear(pooled)
        if hasattr(self.head, "mlp"):
            e = e + self.head.mlp(pooled)
        if hasattr(self.head, "bn"):
            e = self.head.bn(e)
        if self.normalize:
            e = torch.nn.functional.normalize(e, dim=1)
        return e


def config(run):
    with open(os.path.join(run, "config.toml"), "rb") as f:
        return tomllib.load(f)


def load(run, phase="all"):
    """The run's network (eval mode) and its transform (a path -> [3, H, W] tensor)."""
    cfg = config(run)
    m = cfg["model"]
    net = EmbeddingNet(
        m["backbone"], m.get("embedding_dim", 128), m.get("batch_norm", False),
        m.get("skip_connection", False), m["distance"] == "cosine",
    )
    weights = load_file(os.path.join(run, f"phase-{phase}", "checkpoint.safetensors"))
    state = {k: v for k, v in weights.items() if k.startswith(("backbone.", "head."))}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{run}: checkpoint does not fit: missing {missing}, unexpected {unexpected}")
    net.eval()
    crop = cfg["data"]["image_size"]
    side = cfg["data"].get("resize") or crop

    def transform(path):
        image = Image.open(path).convert("RGB")
        if image.size != (side, side):
            image = image.resize((side, side), Image.BILINEAR)
        a = np.asarray(image, dtype=np.float32) / 255.0
        off = round((side - crop) / 2)
        a = a[off : off + crop, off : off + crop]
        return (torch.from_numpy(a.copy()).permute(2, 0, 1) - MEAN) / STD

    return net, transform


def embed(run, paths, phase="all"):
    """Embeddings [len(paths), D] of image files, as dmlviz embeds them."""
    net, transform = load(run, phase)
    with torch.no_grad():
        return net(torch.stack([transform(p) for p in paths]))


def _stored(run, phase):
    import json

    d = os.path.join(run, f"phase-{phase}")
    t = load_file(os.path.join(d, "embeddings.safetensors"))
    with open(os.path.join(d, "embeddings.json")) as f:
        index = json.load(f)
    paths = index["train_paths"] + index["test_paths"]
    return paths, torch.cat([t["train_embeddings"], t["test_embeddings"]])


def stored(run, path, phase="all"):
    """The embedding dmlviz stored for the image `path` (as written in embeddings.json)."""
    paths, rows = _stored(run, phase)
    return rows[paths.index(path)]


def main():
    run = sys.argv[1]
    phase = sys.argv[2] if len(sys.argv) > 2 else "all"
    paths, rows = _stored(run, phase)
    ours = embed(run, paths, phase)
    diff = (ours - rows).abs().max().item()
    print(f"{run} phase-{phase}: {len(paths)} images, max |PyTorch - dmlviz| = {diff:.3g} "
          f"(values up to {rows.abs().max().item():.3g})")


if __name__ == "__main__":
    main()
