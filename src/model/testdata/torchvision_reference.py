# Writes fixtures/torchvision/ (README.md there), the reference of the tests
# `model::backbone::tests::torchvision_parity_*`. From the repository root:
#   bash scripts/fetch-weights.sh
#   python src/model/testdata/torchvision_reference.py fixtures/torchvision .cache/weights/mobilenet_v2-b0353104.pth
#   cargo test --lib model::backbone
# Needs torch, torchvision and safetensors. On a machine without CUDA libraries the CUDA
# torch wheel imports once its missing CUDA libraries are replaced by empty stub .so files
# on LD_LIBRARY_PATH (cc -shared, one per missing soname) and dlopen is lazy (below; recipe in
# fixtures/weights/README.md), e.g. LD_LIBRARY_PATH=/tmp/tvstubs /tmp/tvref/bin/python ...
#
# No weights are written: ResNet18/50 get formula weights (`formula_state_dict`), which the
# Rust test generates identically, and MobileNetV2 the ImageNet file that
# scripts/fetch-weights.sh fetches for CI anyway. The input x is a formula as well. Written per
# arch: `<arch>_state_dict.txt` (torchvision's state_dict without the classifier: one
# "name dtype shape" line per entry, sorted by name) and `<arch>_io.safetensors` (outputs).
#
# The formula, in exact int64 arithmetic then float64 (the same IEEE operations in Rust and
# Python, so the float32 values agree bit for bit): with P = 2^31 - 1, element i (row-major)
# of the tensor with seed s gets
#   h = (16807 * (i*i mod P) + (48271*s mod P) * i + 12345*s) mod P,   u = h / P in [0, 1).
# The input x (2, 3, 64, 96) has seed 0 and is (2u - 1) * sqrt(3) (mean 0, variance 1). The
# state_dict entries, sorted by name, have seeds 1, 2, ... and are, by name:
#   conv weight [o, i, kh, kw]   (2u - 1) * sqrt(3 / (i*kh*kw))   (uniform, variance 1/fan_in)
#   BN weight                    0.75 + 0.5u
#   BN bias, running_mean        0.2u - 0.1
#   BN running_var               0.5 + u
#   BN num_batches_tracked       7
# so eval-mode BN is neither the identity nor a no-op on the statistics.
import sys, os, math
sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
import torch, torchvision
from safetensors.torch import save_file

P = 2**31 - 1
X_SHAPE = (2, 3, 64, 96)
HEAD = ("fc.", "classifier.")


def formula_u(seed, shape):
    i = torch.arange(math.prod(shape), dtype=torch.int64)
    h = (16807 * (i * i % P) + (48271 * seed % P) * i + 12345 * seed) % P
    return (h.double() / P).reshape(shape)


def formula_input():
    return ((2 * formula_u(0, X_SHAPE) - 1) * math.sqrt(3)).float()


def formula_tensor(name, shape, seed):
    if name.endswith("num_batches_tracked"):
        return torch.tensor(7, dtype=torch.int64)
    u = formula_u(seed, shape)
    if len(shape) == 4:
        v = (2 * u - 1) * math.sqrt(3 / (shape[1] * shape[2] * shape[3]))
    elif name.endswith("running_var"):
        v = 0.5 + u
    elif name.endswith((".bias", "running_mean")):
        v = 0.2 * u - 0.1
    elif name.endswith(".weight"):
        v = 0.75 + 0.5 * u
    else:
        raise ValueError(f"no formula for {name} {shape}")
    return v.float()


def formula_state_dict(m):
    names = sorted(k for k in m.state_dict() if not k.startswith(HEAD))
    sd = m.state_dict()
    return {k: formula_tensor(k, tuple(sd[k].shape), seed) for seed, k in enumerate(names, start=1)}


def last_conv(m, arch, x):
    if arch == "mobilenet_v2":
        return m.features(x)
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


def main():
    out, mnv2 = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    os.makedirs(out, exist_ok=True)
    x = formula_input()
    for arch in ["resnet18", "resnet50", "mobilenet_v2"]:
        m = getattr(torchvision.models, arch)()
        if arch == "mobilenet_v2":
            m.load_state_dict(torch.load(mnv2))
        else:
            missing, unexpected = m.load_state_dict(formula_state_dict(m), strict=False)
            assert not unexpected and all(k.startswith(HEAD) for k in missing), (missing, unexpected)
        sd = {k: v for k, v in m.state_dict().items() if not k.startswith(HEAD)}
        with open(f"{out}/{arch}_state_dict.txt", "w") as f:
            for k in sorted(sd):
                f.write(f"{k} {str(sd[k].dtype).removeprefix('torch.')} {list(sd[k].shape)}\n")
        m.eval()
        with torch.no_grad():
            a = last_conv(m, arch, x)
        m.train()
        m.zero_grad()
        b = last_conv(m, arch, x)
        b.mean(dim=(2, 3)).sum().backward()
        b = b.detach()
        first_conv = m.features[0][0] if arch == "mobilenet_v2" else m.conv1
        first_bn = m.features[0][1] if arch == "mobilenet_v2" else m.bn1
        io = {"eval_last": a, "eval_pooled": a.mean(dim=(2, 3)), "train_last": b,
              "first_conv_grad": first_conv.weight.grad, "first_bn_running_mean": first_bn.running_mean,
              "first_bn_nbt": first_bn.num_batches_tracked}
        save_file({k: v.contiguous() for k, v in io.items()}, f"{out}/{arch}_io.safetensors")
        print(f"{arch}: {len(sd)} entries, last conv {tuple(a.shape)}; eval |mean| {a.abs().mean():.3g} "
              f"max {a.abs().max():.3g}, train |mean| {b.abs().mean():.3g} max {b.abs().max():.3g}")


if __name__ == "__main__":
    main()
