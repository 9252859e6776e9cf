#!/bin/bash
# One sitting, back to back on a quiet machine: the bare training step (fp32 and
# bfloat16 autocast, ours then PyTorch's), kNN against FAISS flat, the whole demo
# experiment (ours fp32, ours --amp, the Python stack fp32 and bf16), then ours --amp at
# seeds 43-46 for the accuracy of the bfloat16 lever (about 10 minutes more).
# Everything goes to stdout.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$HOME/.venvs/dmlviz-reference/bin/python}
DMLVIZ=${DMLVIZ:-./target/debug/dmlviz}
DEMO=experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml
mark() { echo "== $* load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"; }
for amp in "" --amp; do
  mark "bench train $amp"
  $DMLVIZ bench train --config $DEMO --arch mobilenet_v2 --arch resnet18 --size 64 --epochs 3 $amp 2>&1 | tail -3
done
for bf16 in "" --bf16; do
  mark "bench-step.py $bf16"
  "$PYTHON" scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 --size 64 --threads 2 --steps 10 $bf16
done
mark knn
bash scripts/bench-knn-vs-faiss.sh
mark "experiment fp32"
python3 scripts/bench-experiment.py --seed 42 --dmlviz "$DMLVIZ" --python "$PYTHON" --out .cache/sitting-fp32
mark "experiment amp / bf16"
python3 scripts/bench-experiment.py --seed 42 --amp --python-bf16 --dmlviz "$DMLVIZ" --python "$PYTHON" --out .cache/sitting-amp
mark "seeds --amp"
python3 scripts/bench-experiment.py --accuracy-only --amp --side dmlviz --seed 43 --seed 44 --seed 45 --seed 46 \
  --dmlviz "$DMLVIZ" --out .cache/sitting-seeds
mark end
