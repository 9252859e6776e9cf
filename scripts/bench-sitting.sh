#!/bin/bash
# Every comparison with the Python stack in one sitting, back to back on a quiet machine:
# the bare training step at 64² and 224² (float32; bfloat16 autocast at 64²), ours then
# PyTorch's (as installed, and with channels-last inputs); kNN against FAISS flat; the
# whole demo experiment at seed 42 (both stacks);
# the accuracy of seeds 43-46 (both stacks; with seed 42 the five-seed table); then
# `make demo` from a fresh clone of this repository, timed line by line (about an hour
# in all on 2 cores). Everything goes to stdout.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$HOME/.venvs/dmlviz-reference/bin/python}
DMLVIZ=${DMLVIZ:-./target/debug/dmlviz}
DEMO=experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml
mark() { echo "== $* load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"; }
echo "== commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with changes)')"
mark "bench train"
$DMLVIZ bench train --config $DEMO --arch mobilenet_v2 --arch resnet18 --size 64 --size 224 --epochs 3 2>&1 | tail -5
mark "bench-step.py"
"$PYTHON" scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 --size 64 --size 224 --threads 2 --steps 10
mark "bench train --amp"
$DMLVIZ bench train --config $DEMO --arch mobilenet_v2 --arch resnet18 --size 64 --epochs 3 --amp 2>&1 | tail -3
mark "bench-step.py --bf16"
"$PYTHON" scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 --size 64 --threads 2 --steps 10 --bf16
mark "bench-step.py --channels-last"
# Not PyTorch as installed: the layout dmlviz feeds its convolutions, for the same kernels
# on both sides.
"$PYTHON" scripts/bench-step.py --arch mobilenet_v2 --arch resnet18 --size 64 --size 224 --threads 2 --steps 10 --channels-last
mark knn
bash scripts/bench-knn-vs-faiss.sh
mark "experiment seed 42"
python3 scripts/bench-experiment.py --seed 42 --dmlviz "$DMLVIZ" --python "$PYTHON" --out .cache/sitting-experiment
mark "seeds 43-46"
python3 scripts/bench-experiment.py --accuracy-only --seed 43 --seed 44 --seed 45 --seed 46 \
  --dmlviz "$DMLVIZ" --python "$PYTHON" --out .cache/sitting-seeds
mark "make demo from a fresh clone"
clone=$(mktemp -d)/dmlviz
git clone --quiet . "$clone"
start=$(date +%s)
(cd "$clone" && make demo 2>&1; echo "make demo exit code $?") |
  while IFS= read -r line; do echo "$(date -u +%T) $line"; done |
  grep -v '^[0-9:]* *\(Compiling\|Downloaded\|Downloading\)' || true
echo "== make demo from a fresh clone: $(( $(date +%s) - start )) s"
rm -rf "$(dirname "$clone")"
mark end
