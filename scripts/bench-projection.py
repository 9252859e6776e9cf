#!/usr/bin/env python3
"""The Python side of `make bench-projection`: umap-learn and openTSNE on the same
embeddings file `dmlviz bench project --data` reads (safetensors, tensors
`embeddings` [N, D] and `labels` [N]), the same evenly spread subsets, 2 threads.

umap-learn is warmed up first, so its JIT compile is not counted: one fit of 5 000
random points, past the 4 096 from which umap-learn builds its kNN graph by
pynndescent (a 300-point warm-up compiles only the exact-search path, and the first
real fit then paid about 50 s of compilation). Trustworthiness is scikit-learn's at k = 15, exact.
Prints one JSON object per line: method, points, seconds, trustworthiness, and for
umap-learn the seconds of its kNN graph and of the rest. `--no-quality`: time only.

Usage: bench-projection.py FILE --points 10000 --points 70000 [--method umap --method tsne]
"""

import argparse
import json
import os
import sys
import time

THREADS = os.environ.setdefault("BENCH_THREADS", "2")
# Before numba / numpy load: their thread pools are sized at import.
for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from sklearn.manifold import trustworthiness  # noqa: E402


def spread_subset(x, n):
    """Rows i·len/n, i < n: the subset `dmlviz bench project --data` takes."""
    if n > len(x):
        sys.exit(f"{n} points asked for, the file holds {len(x)}")
    return x[(np.arange(n, dtype=np.int64) * len(x)) // n]


def chunked_trustworthiness(x, layout, k=15, chunk=500):
    """scikit-learn's trustworthiness, exact, without its n x n distance matrix (70 000
    points would need 39 GB): input ranks are counted one block of rows at a time."""
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    near_out = NearestNeighbors(n_neighbors=k + 1).fit(layout).kneighbors(return_distance=False)
    near_out = near_out[:, :k] if near_out.shape[1] > k else near_out
    penalty = 0.0
    sq = (x.astype(np.float64) ** 2).sum(1)
    for s in range(0, n, chunk):
        rows = np.arange(s, min(n, s + chunk))
        d = sq[rows, None] + sq[None, :] - 2.0 * (x[rows].astype(np.float64) @ x.T.astype(np.float64))
        d[np.arange(len(rows)), rows] = np.inf  # the point itself is not its neighbour
        order = np.argsort(d, axis=1)
        ranks = np.empty_like(order)
        ranks[np.arange(len(rows))[:, None], order] = np.arange(1, n + 1)[None, :]
        r = ranks[np.arange(len(rows))[:, None], near_out[rows]] - k
        penalty += r[r > 0].sum()
    return 1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def run_umap(x, stages):
    """umap-learn's fit; its kNN graph is built first through the same call `fit` makes
    (`nearest_neighbors`, pynndescent above 4 096 points) and handed over as
    `precomputed_knn`, so `stages` gets the graph's time and the rest's."""
    import umap
    from sklearn.utils import check_random_state
    from umap.umap_ import nearest_neighbors

    start = time.perf_counter()
    knn = nearest_neighbors(x, 15, "euclidean", {}, False, check_random_state(None), low_memory=True)
    stages["knn graph"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    # Unseeded: umap-learn then runs its parallel (multi-threaded) SGD.
    layout = umap.UMAP(n_neighbors=15, min_dist=0.1, precomputed_knn=knn).fit_transform(x)
    stages["fuzzy graph, initial layout, optimisation"] = round(time.perf_counter() - start, 3)
    return layout


def run_tsne(x):
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=int(THREADS), random_state=0).fit(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--points", type=int, action="append", required=True)
    p.add_argument("--method", action="append", choices=["umap", "tsne"])
    p.add_argument("--no-quality", action="store_true", help="time only, no trustworthiness")
    args = p.parse_args()
    methods = args.method or ["umap", "tsne"]
    tensors = load_file(args.file)
    if "embeddings" not in tensors:
        sys.exit(f"{args.file}: no tensor named 'embeddings'")
    data = tensors["embeddings"].astype(np.float32)
    if "umap" in methods:
        run_umap(np.random.default_rng(0).normal(size=(5000, data.shape[1])).astype(np.float32), {})
    for n in args.points:
        x = spread_subset(data, n)
        for method in methods:
            stages = {}
            start = time.perf_counter()
            layout = run_umap(x, stages) if method == "umap" else run_tsne(x)
            seconds = time.perf_counter() - start
            if args.no_quality:
                trust = float("nan")
            elif n <= 20000:
                trust = trustworthiness(x, layout, n_neighbors=15)
            else:
                trust = chunked_trustworthiness(x, layout, 15)
            row = {
                "method": {"umap": "umap-learn", "tsne": "openTSNE"}[method],
                "points": n,
                "dim": int(x.shape[1]),
                "threads": int(THREADS),
                "seconds": round(seconds, 3),
                "trustworthiness": None if args.no_quality else round(float(trust), 5),
                "stages": stages,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
