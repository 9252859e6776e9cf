#!/usr/bin/env python3
"""The Python side of `make bench-projection`: umap-learn and openTSNE on the same
embeddings file `dmlviz bench project --data` reads (safetensors, tensors
`embeddings` [N, D] and `labels` [N]), the same evenly spread subsets, 2 threads.

umap-learn is warmed up first (a small fit compiles its numba kernels), so its
JIT compile is not counted. Trustworthiness is scikit-learn's at k = 15, exact.
Prints one JSON object per line: method, points, seconds, trustworthiness.

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


def run_umap(x):
    import umap

    # Unseeded: umap-learn then runs its parallel (multi-threaded) SGD.
    return umap.UMAP(n_neighbors=15, min_dist=0.1).fit_transform(x)


def run_tsne(x):
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=int(THREADS), random_state=0).fit(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--points", type=int, action="append", required=True)
    p.add_argument("--method", action="append", choices=["umap", "tsne"])
    args = p.parse_args()
    methods = args.method or ["umap", "tsne"]
    tensors = load_file(args.file)
    if "embeddings" not in tensors:
        sys.exit(f"{args.file}: no tensor named 'embeddings'")
    data = tensors["embeddings"].astype(np.float32)
    if "umap" in methods:
        run_umap(np.random.default_rng(0).normal(size=(300, data.shape[1])).astype(np.float32))
    for n in args.points:
        x = spread_subset(data, n)
        for method in methods:
            start = time.perf_counter()
            layout = run_umap(x) if method == "umap" else run_tsne(x)
            seconds = time.perf_counter() - start
            trust = trustworthiness(x, layout, n_neighbors=15)
            row = {
                "method": {"umap": "umap-learn", "tsne": "openTSNE"}[method],
                "points": n,
                "dim": int(x.shape[1]),
                "threads": int(THREADS),
                "seconds": round(seconds, 3),
                "trustworthiness": round(float(trust), 5),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
