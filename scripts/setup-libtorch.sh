#!/usr/bin/env bash
# Builds a libtorch 2.13.0 from PyPI wheels.
#   (no option)  .libtorch/       headers + CPU libraries (what `make setup` and the tests use)
#   --cuda       .libtorch-cuda/  headers + the real CUDA libraries (`make setup-cuda`)
#   --dry-run    with --cuda: print the wheels and libraries it would take, download
#                nothing large (reads the torch wheel already in the cache)
# Idempotent: does nothing when the target's build-version already says 2.13.0.
# Why wheels: no libtorch archive is reachable here. The CPU build takes the CUDA
# wheel's libtorch_cpu.so, which runs without a GPU once the two CUDA runtime
# libraries sit beside it. The CUDA build takes every library of the torch wheel but
# the Python ones, and the NVIDIA runtime wheels torch's METADATA pins, all flat in
# lib/: torch's libraries look for their dependencies in $ORIGIN (their rpath), so no
# LD_LIBRARY_PATH is needed (docs/REFERENCE.md, "GPU").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="2.13.0"
cuda=0
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --dry-run) dry_run=1 ;;
    *) echo "setup-libtorch: unknown option $arg (use --cuda, --dry-run)" >&2; exit 1 ;;
  esac
done
if [ "$dry_run" = 1 ] && [ "$cuda" = 0 ]; then
  echo "setup-libtorch: --dry-run goes with --cuda" >&2
  exit 1
fi
cache="${DMLVIZ_WHEEL_CACHE:-$root/.cache/wheels}"
mkdir -p "$cache"
download() { python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache" "$@"; }

if [ "$cuda" = 1 ]; then
  dest="$root/.libtorch-cuda"
  if [ "$dry_run" = 0 ] && [ -f "$dest/build-version" ] \
     && [ "$(cat "$dest/build-version")" = "$version" ] && [ -f "$dest/lib/libtorch_cuda.so" ]; then
    echo "CUDA libtorch $version already in $dest"
    exit 0
  fi
  ls "$cache"/torch-"$version"-*.whl >/dev/null 2>&1 || download "torch==$version"
  # torch's pins: its own Requires-Dist for Linux, and those of the cuda-toolkit
  # meta-package for the extras torch names (cublas, cudart, cufft...).
  mapfile -t pins < <(python3 "$root/scripts/cuda_wheel_pins.py" "$cache" "$version")
  [ "${#pins[@]}" -gt 0 ] || { echo "setup-libtorch: no CUDA pins read" >&2; exit 1; }
  if [ "$dry_run" = 1 ]; then
    echo "CUDA libtorch $version for $dest would take, besides torch==$version:"
    printf '  %s\n' "${pins[@]}"
    python3 "$root/scripts/cuda_wheel_pins.py" --libraries "$cache" "$version"
    exit 0
  fi
  download "${pins[@]}"
  tmp="$(mktemp -d "$root/.libtorch-cuda.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  python3 "$root/scripts/cuda_wheel_pins.py" --extract "$cache" "$version" "$tmp" "${pins[@]}"
  # torch's libraries must find everything they link in lib/ alone (their RPATH has
  # $ORIGIN, which also serves the NVIDIA libraries they pull in); only the driver's
  # libcuda.so.1 (installed with the NVIDIA driver, never in wheels) may be missing. The
  # NVSHMEM/NCCL network plugins (libibverbs, libmpi...) are opened only for multi-node
  # transports and are not checked.
  missing="$(for so in "$tmp"/lib/libtorch*.so "$tmp"/lib/libc10*.so "$tmp"/lib/libcaffe2_nvrtc.so; do
      env -u LD_LIBRARY_PATH ldd "$so" 2>/dev/null; done \
    | grep 'not found' | grep -v 'libcuda\.so' | sort -u || true)"
  if [ -n "$missing" ]; then
    echo "setup-libtorch: libraries missing from the CUDA libtorch:" >&2
    echo "$missing" >&2
    exit 1
  fi
  echo "$version" > "$tmp/build-version"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  echo "CUDA libtorch $version ready in $dest"
  echo "build with: LIBTORCH=$dest CARGO_TARGET_DIR=target/cuda cargo build --release"
  exit 0
fi

dest="$root/.libtorch"
if [ -f "$dest/build-version" ] && [ "$(cat "$dest/build-version")" = "$version" ] \
   && [ -f "$dest/lib/libtorch_cpu.so" ]; then
  echo "libtorch $version already in $dest"
  exit 0
fi
download "torch==$version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
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
