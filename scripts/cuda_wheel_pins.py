#!/usr/bin/env python3
"""The NVIDIA runtime wheels a torch wheel needs on Linux x86_64, read from its METADATA.

Used by scripts/setup-libtorch.sh --cuda (docs/REFERENCE.md, "GPU"):
  cuda_wheel_pins.py CACHE VERSION              print the pins, one per line
  cuda_wheel_pins.py --libraries CACHE VERSION  print the libraries the build takes
  cuda_wheel_pins.py --extract CACHE VERSION OUT PIN...
                                                unpack headers and libraries into OUT

torch pins some wheels itself (cuDNN, cuSPARSELt, NCCL, NVSHMEM) and the rest through
the cuda-toolkit meta-package with extras (cublas, cudart, cufft, ...): those extras'
pins are read from cuda-toolkit's own METADATA (a 3 KB wheel, downloaded when absent).
Python-only requirements (triton, cuda-bindings, sympy...) are left out.
"""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

from pip._vendor.packaging.requirements import Requirement

# The wheel's platform: what the markers are evaluated against.
ENV = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
       "python_version": "3.11", "extra": ""}
# torch's own libraries a C++ program needs; the Python binding and shared-memory
# manager are not.
PYTHON_ONLY_LIBS = ("libtorch_python.so", "libshm.so")


def wheel(cache, prefix):
    found = sorted(glob.glob(os.path.join(cache, prefix + "*.whl")))
    return found[-1] if found else None


def requirements(path):
    """The Requires-Dist lines of a wheel's METADATA, parsed."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [Requirement(l.split(":", 1)[1].strip()) for l in lines if l.startswith("Requires-Dist:")]


def applies(req, extra=""):
    return req.marker is None or req.marker.evaluate({**ENV, "extra": extra})


def pins(cache, version):
    torch = wheel(cache, f"torch-{version}-")
    if torch is None:
        sys.exit(f"cuda_wheel_pins: no torch-{version} wheel in {cache}")
    out = []
    for req in requirements(torch):
        if not applies(req):
            continue
        if req.name == "cuda-toolkit":
            out.extend(toolkit_pins(cache, req))
        elif req.name.startswith("nvidia-"):
            out.append(f"{req.name}{req.specifier}")
    # One pin per wheel (cuda-toolkit's extras repeat nvjitlink, cublas...).
    return sorted(dict.fromkeys(out))


def toolkit_pins(cache, req):
    """The wheels of cuda-toolkit's extras `req` names."""
    version = next(iter(req.specifier)).version
    found = wheel(cache, f"cuda_toolkit-{version}")
    if found is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--dest", cache, f"cuda-toolkit=={version}"],
                       check=True)
        found = wheel(cache, f"cuda_toolkit-{version}")
    out = []
    for sub in requirements(found):
        if any(applies(sub, extra) for extra in req.extras):
            out.append(f"{sub.name}{sub.specifier}")
    return out


def torch_libraries(cache, version):
    with zipfile.ZipFile(wheel(cache, f"torch-{version}-")) as z:
        return sorted(os.path.basename(n) for n in z.namelist()
                      if n.startswith("torch/lib/") and ".so" in os.path.basename(n)
                      and os.path.basename(n) not in PYTHON_ONLY_LIBS)


def wheel_of(cache, pin):
    """The downloaded wheel of a pin (file names use underscores)."""
    name = Requirement(pin).name.replace("-", "_")
    found = wheel(cache, name + "-")
    if found is None:
        sys.exit(f"cuda_wheel_pins: no wheel for {pin} in {cache}")
    return found


def extract(cache, version, out, pin_list):
    os.makedirs(os.path.join(out, "lib"), exist_ok=True)
    os.makedirs(os.path.join(out, "include"), exist_ok=True)
    wanted = set(torch_libraries(cache, version))
    with zipfile.ZipFile(wheel(cache, f"torch-{version}-")) as z:
        for info in z.infolist():
            name, base = info.filename, os.path.basename(info.filename)
            if name.startswith("torch/include/") and not name.endswith("/"):
                copy(z, info, os.path.join(out, "include", name[len("torch/include/"):]))
            elif name.startswith("torch/lib/") and base in wanted:
                copy(z, info, os.path.join(out, "lib", base))
    for pin in pin_list:
        with zipfile.ZipFile(wheel_of(cache, pin)) as z:
            for info in z.infolist():
                parts = info.filename.split("/")
                # nvidia/<component>/lib/<file>.so[.N]: flat into lib/, beside torch's.
                if len(parts) >= 3 and parts[-2] == "lib" and ".so" in parts[-1]:
                    copy(z, info, os.path.join(out, "lib", parts[-1]))


def copy(z, info, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with z.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def main(argv):
    if argv[:1] == ["--libraries"]:
        cache, version = argv[1:3]
        print("libraries from the torch wheel (lib/):")
        for lib in torch_libraries(cache, version):
            print(f"  {lib}")
        print("and every nvidia/*/lib/*.so* of the wheels above (lib/, flat)")
    elif argv[:1] == ["--extract"]:
        cache, version, out = argv[1:4]
        extract(cache, version, out, argv[4:])
    else:
        cache, version = argv[:2]
        print("\n".join(pins(cache, version)))


if __name__ == "__main__":
    main(sys.argv[1:])
