#!/usr/bin/env python3
"""FAISS exact (flat) search on the data `dmlviz bench knn` uses, for the README's
comparison. Run by hand, not by the tests:

    python3 -m venv /tmp/faiss-venv && /tmp/faiss-venv/bin/pip install faiss-cpu numpy
    /tmp/faiss-venv/bin/python scripts/bench-faiss.py --queries 10000 --references 50000 --dim 128 --k 10 --threads 2

Data as in src/bench/knn.rs: `clusters` Gaussian centres, each point a centre plus
noise (sigma 0.5 per coordinate of unit-variance centres), L2-normalised; queries and
references drawn from the same centres. Prints the best of `--repeats` timed searches
(after one warm-up) for IndexFlatIP (cosine on normalised rows) and IndexFlatL2.
"""
import argparse
import time

import faiss
import numpy as np


def clustered(rng, centres, n, noise):
    """`n` L2-normalised rows around randomly chosen `centres`."""
    labels = rng.integers(0, len(centres), size=n)
    x = centres[labels] + noise * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--references", type=int, default=50000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    faiss.omp_set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.clusters, a.dim), dtype=np.float32)
    refs = clustered(rng, centres, a.references, 0.5)
    queries = clustered(rng, centres, a.queries, 0.5)

    print(f"faiss {faiss.__version__}, {a.queries} x {a.references} x {a.dim}, k = {a.k}, {a.threads} threads")
    for name, index in [("IndexFlatIP", faiss.IndexFlatIP(a.dim)), ("IndexFlatL2", faiss.IndexFlatL2(a.dim))]:
        index.add(refs)
        index.search(queries[:100], a.k)  # warm-up (thread pool, page faults)
        times = []
        for _ in range(a.repeats):
            start = time.perf_counter()
            index.search(queries, a.k)
            times.append(time.perf_counter() - start)
        print(f"{name:12} best {min(times):.3f} s  median {sorted(times)[len(times) // 2]:.3f} s")


if __name__ == "__main__":
    main()
