#!/usr/bin/env python3
"""Writes src/explain/faithfulness/testdata/road.safetensors: pytorch-grad-cam 1.5's ROAD
pieces on a small case, for the Rust ROAD to match (docs/REFERENCE.md, "Faithfulness:
ROAD"). Run with the reference venv: ~/.venvs/dmlviz-reference/bin/python scripts/make-road-fixture.py

- image [3, 9, 11] and cam [9, 11] (seeded random);
- for each percentile p in PERCENTILES: the kept masks of RemoveMostRelevantFirst(p)
  and RemoveLeastRelevantFirst(p) (1 = kept), and the image after noise-free linear
  imputation of each (NoisyLinearImputer(noise=0)).
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.metrics.perturbation_confidence import (
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)

PERCENTILES = [20, 50, 90]


class Recording:
    """An imputer that records the mask it is given, then imputes without noise."""

    def __init__(self):
        self.inner = NoisyLinearImputer(noise=0.0)
        self.mask = None

    def __call__(self, img, mask):
        self.mask = mask.clone()
        return self.inner(img, mask)


def main():
    torch.manual_seed(0)
    image = torch.randn(3, 9, 11)
    cam = torch.rand(9, 11)
    out = {"image": image, "cam": cam}
    for p in PERCENTILES:
        for name, remover in [("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)]:
            rec = Recording()
            imputed = remover(p, rec)(image, cam)
            out[f"{name}_{p}_kept"] = rec.mask.float()
            out[f"{name}_{p}_imputed"] = imputed.float().contiguous()
    root = os.path.join(os.path.dirname(__file__), "..")
    path = os.path.join(root, "src/explain/faithfulness/testdata/road.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path)
    print(path)


if __name__ == "__main__":
    main()
