#!/bin/bash
# kNN back to back, alternating: ours (dmlviz bench knn), FAISS flat (scripts/bench-faiss.py), twice.
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$HOME/.venvs/dmlviz-reference/bin/python}
for round in 1 2; do
  echo "== round $round load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
  nice ./target/debug/dmlviz bench knn --repeats 2 --threads 2
  echo "-- faiss load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
  nice "$PYTHON" scripts/bench-faiss.py --repeats 2 --threads 2
done
echo "== end load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
