#!/usr/bin/env bash
# Builds .libtorch/ (headers + CPU libraries of libtorch 2.13.0) from PyPI wheels.
# Idempotent: does nothing when .libtorch/build-version already says 2.13.0.
# Why wheels: no CPU-only libtorch archive is reachable here; the CUDA wheel's
# libtorch_cpu.so runs without a GPU once the two CUDA runtime libraries sit beside it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.libtorch"
version="2.13.0"
if [ -f "$dest/build-version" ] && [ "$(cat "$dest/build-version")" = "$version" ] \
   && [ -f "$dest/lib/libtorch_cpu.so" ]; then
  echo "libtorch $version already in $dest"
  exit 0
fi
cache="${DMLVIZ_WHEEL_CACHE:-$root/.cache/wheels}"
mkdir -p "$cache"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache" \
  "torch==$version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
tmp="$(mktemp -d "$root/.libtorch.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib" "$tmp/include"
python3 - "$cache" "$tmp" "$version" <<'PY'
import glob, os, shutil, sys, zipfile
cache, out, version = sys.argv[1:]
def wheel(prefix):
    found = sorted(glob.glob(os.path.join(cache, prefix + "*.whl")))
    if not found:
        sys.exit(f"setup-libtorch: no wheel {prefix}* in {cache}")
    return found[-1]
libs = {"libc10.so", "libtorch_cpu.so", "libgomp.so.1", "libcudart.so.13", "libcupti.so.13"}
got = set()
for w in [wheel(f"torch-{version}-"), wheel("nvidia_cuda_runtime-"), wheel("nvidia_cuda_cupti-")]:
    with zipfile.ZipFile(w) as z:
        for info in z.infolist():
            name = info.filename
            base = os.path.basename(name)
            if name.startswith("torch/include/") and not name.endswith("/"):
                target = os.path.join(out, "include", name[len("torch/include/"):])
            elif base in libs and "/lib" in "/" + name:
                target = os.path.join(out, "lib", base)
                got.add(base)
            else:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
missing = libs - got
if missing:
    sys.exit(f"setup-libtorch: wheels lack {sorted(missing)}")
PY
# The wheel's libtorch.so only pulls in libtorch_cuda.so; an empty one keeps the linker happy.
echo "" > "$tmp/empty.c"
cc -shared -o "$tmp/lib/libtorch.so" "$tmp/empty.c"
rm "$tmp/empty.c"
echo "$version" > "$tmp/build-version"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "libtorch $version ready in $dest"
