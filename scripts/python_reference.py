#!/usr/bin/env python3
"""The demo preset the way a user of the Python stack runs it, timed per stage.

Same images, split rule and weights as `make demo`
(experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml):

* data: the dmlviz dataset folder (one folder per class, or the CUB layout), split
  per class with dmlviz's own rule and generator (SplitMix64, `Rng::derive(seed,
  [class])`, Fisher-Yates, `round(n * test_ratio)` clamped to [1, n - 1] to test;
  src/data/split.rs), so both sides train and test on the same images;
* model: torchvision MobileNetV2 features with the ImageNet weights dmlviz imports
  (`weights/mobilenet_v2-imagenet.safetensors`, the torchvision state_dict names
  under `backbone.`), global average pool, linear to 128, L2 normalisation;
* training: PyTorch DataLoader with 2 workers, pytorch-metric-learning's
  MPerClassSampler (P x K = 32 x 3), NTXentLoss (temperature 0.1) with
  BatchEasyHardMiner (easy positives, hard negatives): PML's closest form of EPSHN;
  SGD lr 0.03; both phases (all classes; without the last `held_out` classes);
  per-epoch evaluation (precision@1 of test images against training images);
* evaluation: FAISS IndexFlatIP on the L2-normalised embeddings;
* map: umap-learn on the phase-all embeddings (test + train), a matplotlib PNG;
* explanations: pytorch-grad-cam GradCAM of 16 test images on the last convolution,
  target: similarity to the image's nearest training embedding;
* site: one HTML page with the metrics, the map and the 16 overlays.

Prints one JSON object: seconds per stage, and precision@1 per phase (all test
images; for phase-seen also the held-out classes' test images).

    ~/.venvs/dmlviz-reference/bin/python scripts/python_reference.py --data data/emoji-animals --out /tmp/pyref-run

Install a venv for it (CPU wheels):

    python3 -m venv ~/.venvs/dmlviz-reference
    ~/.venvs/dmlviz-reference/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision
    ~/.venvs/dmlviz-reference/bin/pip install pytorch-metric-learning faiss-cpu umap-learn grad-cam safetensors matplotlib
"""
import argparse
import html
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

MASK = (1 << 64) - 1
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg"}
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class SplitMix64:
    """dmlviz's generator, bit for bit (src/data/rng.rs)."""

    def __init__(self, seed):
        self.state = seed & MASK

    @staticmethod
    def derive(seed, path):
        state = seed & MASK
        for p in path:
            state = SplitMix64(state ^ ((p * 0xD6E8FEB86659FD93) & MASK)).next_u64()
        return SplitMix64(state)

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        zone = MASK - MASK % n
        while True:
            x = self.next_u64()
            if x < zone:
                return x % n

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def open_dataset(root):
    """(paths, labels, class names) in dmlviz's order: sorted class folders, sorted files;
    or the CUB layout's images.txt order."""
    root = Path(root)
    if (root / "images.txt").exists():
        names = {int(i): n for i, n in (l.split(maxsplit=1) for l in open(root / "classes.txt").read().splitlines() if l.strip())}
        ids = sorted(names)
        label_of = {int(i): ids.index(int(c)) for i, c in (l.split() for l in open(root / "image_class_labels.txt").read().splitlines() if l.strip())}
        paths, labels = [], []
        for line in open(root / "images.txt").read().splitlines():
            if line.strip():
                i, rel = line.split(maxsplit=1)
                paths.append(root / "images" / rel)
                labels.append(label_of[int(i)])
        return paths, labels, [names[i] for i in ids]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels, classes = [], [], []
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if images:
            paths += images
            labels += [len(classes)] * len(images)
            classes.append(folder.name)
    return paths, labels, classes


def stratified_split(labels, test_ratio, seed):
    """dmlviz's Split::stratified (src/data/split.rs)."""
    per_class = {}
    for i, l in enumerate(labels):
        per_class.setdefault(l, []).append(i)
    train, test = [], []
    for c in range(max(labels) + 1):
        members = list(per_class.get(c, []))
        SplitMix64.derive(seed, [c]).shuffle(members)
        n = len(members)
        n_test = 0 if n < 2 else min(max(int(np.floor(n * test_ratio + 0.5)), 1), n - 1)
        test += members[:n_test]
        train += members[n_test:]
    return sorted(train), sorted(test)


class Images(torch.utils.data.Dataset):
    """Images composited on white, resized to `size`, ImageNet-normalised."""

    def __init__(self, paths, labels, size):
        self.paths, self.labels = paths, labels
        self.transform = torchvision.transforms.Compose([
            torchvision.transforms.Resize((size, size)),
            torchvision.transforms.ToTensor(),
            torchvision.transforms.Normalize(MEAN, STD),
        ])

    def __len__(self):
        return len(self.paths)

    def rgb(self, i):
        im = Image.open(self.paths[i])
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        return im.convert("RGB")

    def __getitem__(self, i):
        return self.transform(self.rgb(i)), self.labels[i]


class EmbeddingNet(torch.nn.Module):
    def __init__(self, weights, dim):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        if weights:
            from safetensors.torch import load_file
            state = load_file(weights)
            own = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            if not own:  # dmlviz's var-store names: backbone.features.…
                own = {k.split("features.", 1)[1]: v for k, v in state.items() if "features." in k}
            self.features.load_state_dict(own)
        self.head = torch.nn.Linear(1280, dim)

    def forward(self, x):
        return F.normalize(self.head(self.features(x).mean((2, 3))), dim=1)


def embed(net, loader):
    net.eval()
    out, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            out.append(net(x))
            labels.append(y)
    return torch.cat(out).numpy(), torch.cat(labels).numpy()


def nearest(queries, refs, k=1):
    import faiss
    index = faiss.IndexFlatIP(refs.shape[1])
    index.add(np.ascontiguousarray(refs, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def precision_at_1(q, ql, r, rl):
    _, idx = nearest(q, r)
    return float((rl[idx[:, 0]] == ql).mean()) if len(ql) else float("nan")


def train_phase(args, name, seen, data, train_idx, test_idx, times):
    from pytorch_metric_learning import losses, miners, samplers
    torch.manual_seed(args.seed)
    net = EmbeddingNet(args.weights, args.dim)
    phase_train = [i for i in train_idx if data.labels[i] in seen]
    train_set = torch.utils.data.Subset(data, phase_train)
    sampler = samplers.MPerClassSampler([data.labels[i] for i in phase_train], m=args.per_class,
                                        batch_size=args.classes * args.per_class,
                                        length_before_new_iter=len(phase_train))
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.classes * args.per_class, sampler=sampler,
                                         num_workers=args.workers, drop_last=True, persistent_workers=args.workers > 0)
    eval_kw = dict(batch_size=64, num_workers=args.workers, persistent_workers=args.workers > 0)
    ref_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, train_idx), **eval_kw)
    test_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, test_idx), **eval_kw)
    loss_fn = losses.NTXentLoss(temperature=args.temperature)
    miner = miners.BatchEasyHardMiner(pos_strategy=miners.BatchEasyHardMiner.EASY,
                                      neg_strategy=miners.BatchEasyHardMiner.HARD)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr)
    history = []
    train_s = eval_s = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        net.train()
        for x, y in loader:
            # --bf16: the forward pass under CPU autocast, the loss in float32 (as dmlviz's --amp)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                e = net(x)
            e = e.float()
            loss = loss_fn(e, y, miner(e, y))
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_s += time.perf_counter() - start
        start = time.perf_counter()
        r, rl = embed(net, ref_loader)
        q, ql = embed(net, test_loader)
        p1 = precision_at_1(q, ql, r, rl)
        unseen = np.array([l not in seen for l in ql])
        p1_unseen = precision_at_1(q[unseen], ql[unseen], r, rl) if unseen.any() else None
        eval_s += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "precision_at_1": p1, "precision_at_1_unseen": p1_unseen})
    times[f"{name}_train_s"] = round(train_s, 2)
    times[f"{name}_eval_s"] = round(eval_s, 2)
    return net, history, (q, ql, r, rl)


class SimilarityTarget:
    """Grad-CAM target: cosine similarity of an image's embedding to a fixed one."""

    def __init__(self, concept):
        self.concept = concept

    def __call__(self, output):
        return F.cosine_similarity(output, self.concept, dim=0)


def explain(args, net, data, test_idx, refs, out, times):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    start = time.perf_counter()
    net.eval()
    cam = GradCAM(model=net, target_layers=[net.features[-1]])
    chosen = test_idx[: args.explanations]
    x = torch.stack([data[i][0] for i in chosen])
    with torch.no_grad():
        e = net(x).numpy()
    _, nn_idx = nearest(e, refs)
    targets = [SimilarityTarget(torch.from_numpy(refs[j])) for j in nn_idx[:, 0]]
    maps = cam(input_tensor=x, targets=targets)
    files = []
    for i, (sample, heat) in enumerate(zip(chosen, maps)):
        rgb = np.asarray(data.rgb(sample).resize((args.size, args.size)), dtype=np.float32) / 255
        Image.fromarray(show_cam_on_image(rgb, heat, use_rgb=True)).save(out / f"cam-{i:02}.png")
        files.append(f"cam-{i:02}.png")
    times["gradcam_s"] = round(time.perf_counter() - start, 2)
    return files


def umap_map(args, q, ql, r, rl, out, times):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import umap
    start = time.perf_counter()
    points = np.concatenate([q, r])
    xy = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=args.seed).fit_transform(points)
    colours = np.concatenate([ql, rl])
    plt.figure(figsize=(8, 8))
    plt.scatter(xy[:, 0], xy[:, 1], c=colours, s=6, cmap="tab20")
    plt.axis("off")
    plt.savefig(out / "umap.png", dpi=100)
    plt.close()
    times["umap_s"] = round(time.perf_counter() - start, 2)


def site(out, metrics, cams, times):
    start = time.perf_counter()
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in metrics.items())
    imgs = "".join(f'<img src="{html.escape(c)}" width="128">' for c in cams)
    page = (f"<!doctype html><meta charset=utf-8><title>Python reference</title><h1>Python reference</h1>"
            f"<table>{rows}</table><h2>UMAP</h2><img src=umap.png><h2>Grad-CAM</h2>{imgs}")
    (out / "index.html").write_text(page)
    times["site_s"] = round(time.perf_counter() - start, 3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data/emoji-animals")
    p.add_argument("--weights", default="weights/mobilenet_v2-imagenet.safetensors")
    p.add_argument("--out", default=".cache/python-reference")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--classes", type=int, default=32)
    p.add_argument("--per-class", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--held-out", type=int, default=20)
    p.add_argument("--test-ratio", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--explanations", type=int, default=16)
    p.add_argument("--bf16", action="store_true",
                   help="train with the forward pass under CPU autocast to bfloat16 (dmlviz's --amp)")
    p.add_argument("--accuracy-only", action="store_true",
                   help="train and evaluate both phases only (the seed study): no map, explanations or site")
    p.add_argument("--split-rule", choices=["dmlviz", "random"], default="dmlviz",
                   help="dmlviz: the same images as dmlviz; random: numpy's per-class shuffle (another split by the same rule)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    total = time.perf_counter()

    start = time.perf_counter()
    paths, labels, classes = open_dataset(args.data)
    if args.split_rule == "dmlviz":
        train_idx, test_idx = stratified_split(labels, args.test_ratio, args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        train_idx, test_idx = [], []
        for c in range(len(classes)):
            m = [i for i, l in enumerate(labels) if l == c]
            rng.shuffle(m)
            k = 0 if len(m) < 2 else min(max(int(np.floor(len(m) * args.test_ratio + 0.5)), 1), len(m) - 1)
            test_idx += m[:k]
            train_idx += m[k:]
    data = Images(paths, labels, args.size)
    times["data_s"] = round(time.perf_counter() - start, 2)

    n = len(classes)
    metrics = {"images": len(paths), "classes": n, "train": len(train_idx), "test": len(test_idx)}
    phases = [("all", set(range(n))), ("seen", set(range(max(n - args.held_out, 0))))]
    results = {}
    for name, seen in phases:
        net, history, embedded = train_phase(args, name, seen, data, train_idx, test_idx, times)
        metrics[f"{name}_precision_at_1"] = history[-1]["precision_at_1"]
        if name == "seen":
            metrics["seen_precision_at_1_unseen"] = history[-1]["precision_at_1_unseen"]
        results[name] = (net, embedded)
    if not args.accuracy_only:
        net, (q, ql, r, rl) = results["all"]
        umap_map(args, q, ql, r, rl, out, times)
        cams = explain(args, net, data, test_idx, r, out, times)
        site(out, metrics, cams, times)
    times["total_s"] = round(time.perf_counter() - total, 2)
    import faiss
    import pytorch_metric_learning
    print(json.dumps({"side": "python", "torch": torch.__version__, "pml": pytorch_metric_learning.__version__,
                      "faiss": faiss.__version__, "threads": args.threads, "workers": args.workers,
                      "seed": args.seed, "epochs": args.epochs, "bf16": args.bf16, "times": times, "metrics": metrics}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
