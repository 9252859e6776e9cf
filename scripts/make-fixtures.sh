#!/usr/bin/env bash
# Rebuilds fixtures/ from the real registry datasets (run by `make fixtures`; needs
# npm and apt access). The committed fixtures are its output: tests never fetch.
#   fixtures/cards      image-folder layout: 8 card classes × 6 GPL-2+ KDE decks, 64 px high
#   fixtures/emoji-cub  CUB-200-2011 layout: 6 "Animals & Nature" emoji × google, twitter
#                       (google = train, twitter = test in train_test_split.txt)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dmlviz() { cargo run --quiet --bin dmlviz -- "$@"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

decks="ancient-egyptians,dondorf,gm-paris,nicu-white,oxygen,xskat-german"
dmlviz data fetch cards --decks "$decks" --height 64 --out "$work/cards"
rm -rf fixtures/cards
mkdir -p fixtures/cards
# Aces to fours of hearts and spades: similar layouts, different suits and ranks.
for class in "$work"/cards/*.{1,2,3,4}_{heart,spade}; do
  cp -r "$class" fixtures/cards/
done
cp "$work/cards/dataset.json" fixtures/cards.dataset.json

dmlviz data fetch emoji --vendors google,twitter --category "Animals & Nature" --out "$work/emoji"
rm -rf fixtures/emoji-cub
mkdir -p fixtures/emoji-cub/images
: > fixtures/emoji-cub/images.txt
: > fixtures/emoji-cub/image_class_labels.txt
: > fixtures/emoji-cub/classes.txt
: > fixtures/emoji-cub/train_test_split.txt
id=0
class_id=0
for class in $(ls "$work/emoji" | grep -E '^[0-9]{4}\.' | head -6); do
  class_id=$((class_id + 1))
  name=$(printf '%03d.%s' "$class_id" "${class#*.}")
  echo "$class_id $name" >> fixtures/emoji-cub/classes.txt
  mkdir -p "fixtures/emoji-cub/images/$name"
  for vendor in google twitter; do
    id=$((id + 1))
    cp "$work/emoji/$class/$vendor.png" "fixtures/emoji-cub/images/$name/$vendor.png"
    echo "$id $name/$vendor.png" >> fixtures/emoji-cub/images.txt
    echo "$id $class_id" >> fixtures/emoji-cub/image_class_labels.txt
    echo "$id $([ "$vendor" = google ] && echo 1 || echo 0)" >> fixtures/emoji-cub/train_test_split.txt
  done
done
cp "$work/emoji/dataset.json" fixtures/emoji-cub.dataset.json
echo "fixtures rebuilt: $(find fixtures -name '*.png' | wc -l) images"
