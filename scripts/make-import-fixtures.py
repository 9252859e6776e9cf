"""Writes src/import/testdata/: the fixture of `tests/import.rs`'s PyTorch parity test.

Run from the repository root with the Python reference stack:
    ~/.venvs/dmlviz-reference/bin/python scripts/make-import-fixtures.py

What it writes:
- `pml_resnet18.pth`: the state_dict of a pytorch-metric-learning style model, saved with
  torch.save (zip format): `trunk.*` is a torchvision ResNet18 whose `fc` was replaced by
  Identity (so no `trunk.fc.*`), `embedder.*` a Linear(512, 128).
- `pml_resnet18_embeddings.safetensors`: `embeddings` [4, 128] f32, the eval-mode output of
  that same model (the weights as stored, read back from the file) for the 4 images in
  IMAGES, and `inputs` [4, 3, 64, 64], the normalised input tensors.

Size: random weights that do not compress. To stay small (about 5 MB, not 45 MB), every
convolution and linear weight is a view into ONE shared float16 storage, each at its own
offset (torch.save writes a shared storage once); one scale cannot suit every fan-in, so
the BatchNorm running statistics are measured by one
train-mode pass over random input (momentum=None: the plain average) and saved with the
weights. The parity test reads the same file, so the sharing costs nothing in rigour and
also exercises the reader's shared-storage and storage-offset path.

The images are 64×64 RGB PNGs, so dmlviz's resize and centre crop at image_size = 64 are
the identity and both sides see the same pixels: x = (pixel/255 - mean) / std.
"""

import math
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

OUT = "src/import/testdata"
IMAGES = [
    "fixtures/emoji-cub/images/001.monkey_face/google.png",
    "fixtures/emoji-cub/images/002.monkey/twitter.png",
    "fixtures/emoji-cub/images/003.gorilla/google.png",
    "fixtures/emoji-cub/images/005.dog/twitter.png",
]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
EMBEDDING_DIM = 128


class PmlModel(torch.nn.Module):
    """PML's usual pair: `trunk` (a backbone with fc = Identity) and `embedder`."""

    def __init__(self):
        super().__init__()
        self.trunk = torchvision.models.resnet18()
        self.trunk.fc = torch.nn.Identity()
        self.embedder = torch.nn.Linear(512, EMBEDDING_DIM)

    def forward(self, x):
        return self.embedder(self.trunk(x))


def shared_weights(model, gen):
    """Every conv/linear weight as a view into one float16 storage of N(0, 0.02²) values,
    each at its own offset; the BatchNorms (calibrated in main) absorb the scale."""
    weights = {k: v for k, v in model.state_dict().items() if k.endswith("weight") and v.dim() in (2, 4)}
    largest = max(v.numel() for v in weights.values())
    pool = (torch.randn(largest + 4096, generator=gen) * 0.02).half()
    out = {}
    for i, (name, v) in enumerate(sorted(weights.items())):
        offset = (i * 97) % 4096
        out[name] = pool[offset : offset + v.numel()].view(v.shape)
    return out


def load_image(path):
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return (torch.from_numpy(a).permute(2, 0, 1) - MEAN) / STD


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(1234)
    model = PmlModel()
    views = shared_weights(model, gen)
    with torch.no_grad():
        for name, t in model.named_parameters():
            if name in views:
                t.copy_(views[name].float())
            elif name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:  # BatchNorm weight
                t.copy_(0.75 + 0.5 * torch.rand(t.shape, generator=gen))
    # BatchNorm statistics: the plain average over one train-mode pass of random input.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64, generator=gen))
    model.eval()

    state = {}
    for name, t in model.state_dict().items():
        # The saved file holds the shared float16 views; everything else as it is.
        state[name] = views[name] if name in views else t.clone()
    os.makedirs(OUT, exist_ok=True)
    pth = f"{OUT}/pml_resnet18.pth"
    torch.save(state, pth)

    # The reference output comes from the weights as read back from the file.
    loaded = torch.load(pth)
    reference = PmlModel()
    missing, unexpected = reference.load_state_dict({k: v.float() if v.is_floating_point() else v
                                                     for k, v in loaded.items()})
    assert not missing and not unexpected, (missing, unexpected)
    reference.eval()
    x = torch.stack([load_image(p) for p in IMAGES])
    with torch.no_grad():
        e = reference(x)
    save_file({"embeddings": e.contiguous(), "inputs": x.contiguous()},
              f"{OUT}/pml_resnet18_embeddings.safetensors")
    print(f"{pth}: {os.path.getsize(pth)} bytes, {len(state)} entries; embeddings {tuple(e.shape)} "
          f"|mean| {e.abs().mean():.4g} max {e.abs().max():.4g}; "
          f"row-to-row mean distance {torch.cdist(e, e).mean():.4g}")


if __name__ == "__main__":
    sys.exit(main())
