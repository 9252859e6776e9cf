#!/bin/bash
# The report site's size by file kind and part for a fully projected demo run (README,
# "The map page, `project --add`, aligned phase maps": "Site size"). The demo preset is
# copied with its epochs cut to EPOCHS (the site's size does not depend on them), trained,
# then `make demo`'s project, explain and report steps run; the site's bytes are summed
# by extension and by part (maps, galleries, explanations).
#
#   scripts/site-size.sh WORKDIR [DMLVIZ] [EPOCHS] [--no-explain]
#
# WORKDIR gets data/ (a copy of data/emoji-animals, fetched when missing), runs/ and
# reports/. DMLVIZ defaults to target/debug/dmlviz; EPOCHS to 1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/site-size.sh WORKDIR [DMLVIZ] [EPOCHS] [--no-explain]}
bin=$(realpath "${2:-$repo/target/debug/dmlviz}")
epochs=${3:-1}
explain=${4:-}
mkdir -p "$work/fixtures/photos"
cd "$work"
ln -sfn "$repo/weights" weights
ln -sfn "$repo/experiments" experiments
cp "$repo/fixtures/photos/chelsea.jpg" fixtures/photos/
if [ ! -d data/emoji-animals ]; then
  if [ -d "$repo/data/emoji-animals" ]; then mkdir -p data && cp -r "$repo/data/emoji-animals" data/
  else "$bin" data fetch emoji --category "Animals & Nature" --out data/emoji-animals; fi
fi
sed "s/^epochs = .*/epochs = $epochs/" \
  "$repo/experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml" > demo.toml
[ -d runs/demo ] || "$bin" train --config demo.toml --out runs/demo --quiet
"$bin" project --run runs/demo --phase all --method both --thumbnails --quiet
"$bin" project --run runs/demo --phase seen --method umap --quiet
if [ "$explain" != "--no-explain" ]; then
  "$bin" explain --run runs/demo --phase all --samples 8 --quiet
  "$bin" explain --run runs/demo --phase seen --samples 8 --quiet
  "$bin" explain --run runs/demo --image fixtures/photos/chelsea.jpg --method all --layer auto --quiet
fi
"$bin" report --runs runs --out reports
sum() { awk '{s+=$1; n++} END {printf "%5d files %10d bytes\n", n, s}'; }
echo "site reports/: $(find reports -type f -printf '%s\n' | sum)"
for ext in png jpg svg html csv json; do
  echo "  .$ext $(find reports -type f -name "*.$ext" -printf '%s\n' | sum)"
done
for part in projections galleries explanations; do
  echo "  in $part/ $(find reports -type f -path "*/$part/*" -printf '%s\n' | sum)"
done
