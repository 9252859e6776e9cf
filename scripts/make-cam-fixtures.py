# Writes src/explain/testdata/cam_parity.safetensors, the reference of the tests
# `explain::cam_tests::*_matches_pytorch_grad_cam`. From the repository root:
#   ~/.venvs/dmlviz-reference/bin/python scripts/make-cam-fixtures.py   (any Python with torch,
#   grad-cam 1.5.x and safetensors)
#
# A small network (conv 3->4, ReLU, "block1"; conv 4->6 stride 2, ReLU, "block2"; conv 6->8
# stride 2, ReLU, "block3" = the last conv; global mean; linear 8->5) with seeded random
# weights explains two 16x16 images against a similarity target: the cosine of the
# embedding with a fixed embedding per image (pytorch-grad-cam's tutorial target for
# embedding networks, "similarity to concept"). Every CAM method of grad-cam 1.5 that
# dmlviz implements writes its map at block3; Grad-CAM also at [block2, block3] (multi-layer
# mean), with aug_smooth and with eigen_smooth; the gradient methods also at block2. The weights, the images and the targets
# are written too, so the Rust test rebuilds the same network.
#
# One departure, applied here with grad-cam's own pipeline: the sign of the first singular
# vector (Eigen-CAM, eigen_smooth) is whatever LAPACK returns in grad-cam; dmlviz takes the
# sign whose projection agrees with the channel sum of the centred terms. The script wraps
# grad-cam's get_2d_projection to flip to that sign (and records how often it flipped).
import importlib.metadata
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import pytorch_grad_cam
import pytorch_grad_cam.base_cam as base_cam
import pytorch_grad_cam.eigen_cam as eigen_cam
from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus,
                              HiResCAM, LayerCAM, ScoreCAM, XGradCAM)

OUT = sys.argv[1] if len(sys.argv) > 1 else "src/explain/testdata/cam_parity.safetensors"


class TinyEmbedder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.block2 = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.ReLU())
        self.block3 = torch.nn.Sequential(torch.nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        a = self.block3(self.block2(self.block1(x)))
        return self.head(a.mean(dim=(2, 3)))


class SimilarityTarget:
    """cos(embedding, t) of one image's embedding (1-D) with its fixed embedding t."""

    def __init__(self, t):
        self.t = t

    def __call__(self, output):
        return torch.nn.functional.cosine_similarity(output, self.t, dim=0)


flips = [0]
library_projection = base_cam.get_2d_projection


def signed_projection(batch):
    """grad-cam's projection, with each image's sign set as dmlviz sets it."""
    out = library_projection(batch.copy())
    for i, terms in enumerate(batch):
        x = np.nan_to_num(terms).reshape(terms.shape[0], -1).T
        x = x - x.mean(axis=0)
        if float((out[i].reshape(-1) * x.sum(axis=1)).sum()) < 0:
            out[i] = -out[i]
            flips[0] += 1
    return out


base_cam.get_2d_projection = signed_projection
eigen_cam.get_2d_projection = signed_projection


def main():
    torch.manual_seed(20261201)
    net = TinyEmbedder().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        e = net(x)
    # Targets near each image's own embedding, so every score is alive and positive.
    targets = e + 0.5 * torch.randn_like(e)
    cam_targets = [SimilarityTarget(t) for t in targets]
    out = {name.replace(".", "_"): p.detach().contiguous() for name, p in net.state_dict().items()}
    out["x"] = x
    out["targets"] = targets
    methods = {
        "gradcam": GradCAM,
        "gradcam_pp": GradCAMPlusPlus,
        "xgradcam": XGradCAM,
        "hirescam": HiResCAM,
        "layercam": LayerCAM,
        "scorecam": ScoreCAM,
        "ablationcam": AblationCAM,
        "eigencam": EigenCAM,
    }
    for name, cls in methods.items():
        with cls(model=net, target_layers=[net.block3]) as cam:
            out["map_" + name] = torch.from_numpy(cam(input_tensor=x, targets=cam_targets))
    with GradCAM(model=net, target_layers=[net.block2, net.block3]) as cam:
        out["map_gradcam_two_layers"] = torch.from_numpy(cam(input_tensor=x, targets=cam_targets))
    with GradCAM(model=net, target_layers=[net.block3]) as cam:
        out["map_gradcam_aug"] = torch.from_numpy(
            cam(input_tensor=x, targets=cam_targets, aug_smooth=True))
        out["map_gradcam_eigen"] = torch.from_numpy(
            cam(input_tensor=x, targets=cam_targets, eigen_smooth=True))
    # At the last conv of a mean-pooled network the gradient is constant over locations,
    # so HiResCAM and XGrad-CAM equal Grad-CAM there: block2 tells them apart.
    for name in ["gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam"]:
        with methods[name](model=net, target_layers=[net.block2]) as cam:
            out[f"map_{name}_block2"] = torch.from_numpy(cam(input_tensor=x, targets=cam_targets))
    meta = {"grad_cam": importlib.metadata.version("grad-cam"),
            "torch": torch.__version__, "sign_flips": str(flips[0])}
    save_file({k: v.float().contiguous() for k, v in out.items()}, OUT, metadata=meta)
    print(f"wrote {OUT}: {len(out)} tensors, eigen sign flips {flips[0]}")


if __name__ == "__main__":
    main()
