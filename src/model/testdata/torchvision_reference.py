# Writes the reference files of `model::backbone::tests::torchvision_parity` (an ignored test):
#   python torchvision_reference.py OUT_DIR [mobilenet_v2-b0353104.pth]
#   DMLVIZ_TORCHVISION_REFERENCE=OUT_DIR cargo test --lib torchvision_parity -- --ignored
# Needs torch, torchvision and safetensors. On a machine without CUDA libraries the CUDA
# torch wheel imports once its missing CUDA libraries are replaced by empty stub .so files
# on LD_LIBRARY_PATH (cc -shared, one per missing soname) and dlopen is lazy (below).
import sys, os
sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
import torch, torchvision
from safetensors.torch import save_file

out = sys.argv[1]
mnv2 = sys.argv[2] if len(sys.argv) > 2 else None
torch.set_num_threads(2)

def last_conv(m, arch, x):
    if arch == "mobilenet_v2":
        return m.features(x)
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))

for arch in ["resnet18", "resnet50", "mobilenet_v2"]:
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)()
    if arch == "mobilenet_v2" and mnv2:
        m.load_state_dict(torch.load(mnv2))
    else:
        # Random BN statistics and affine parameters, so eval-mode BN is not the identity.
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                with torch.no_grad():
                    mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
                    mod.weight.uniform_(0.5, 1.5); mod.bias.normal_(0, 0.1)
                    mod.num_batches_tracked.fill_(7)
    head = ("fc.", "classifier.")
    sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.startswith(head)}
    save_file(sd, f"{out}/{arch}.safetensors")
    x = torch.randn(2, 3, 64, 96)
    m.eval()
    with torch.no_grad():
        a = last_conv(m, arch, x)
    m.train()
    m.zero_grad()
    b = last_conv(m, arch, x)
    b.mean(dim=(2, 3)).sum().backward()
    first_conv = m.features[0][0] if arch == "mobilenet_v2" else m.conv1
    first_bn = m.features[0][1] if arch == "mobilenet_v2" else m.bn1
    io = {"x": x, "eval_last": a, "eval_pooled": a.mean(dim=(2, 3)), "train_last": b.detach(),
          "first_conv_grad": first_conv.weight.grad, "first_bn_running_mean": first_bn.running_mean,
          "first_bn_nbt": first_bn.num_batches_tracked}
    save_file({k: v.contiguous() for k, v in io.items()}, f"{out}/{arch}_io.safetensors")
    print(arch, len(sd), tuple(a.shape), float(a.abs().mean()))
