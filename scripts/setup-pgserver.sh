#!/usr/bin/env bash
# Fetches the PyPI wheel pgserver 0.1.4 (PostgreSQL 16.2 with pgvector 0.6.2) into .cache/
# and unpacks its server binaries to .cache/pgserver-0.1.4/pgserver/pginstall (beside
# pgserver.libs/, where the binaries' RPATH finds libpq). Idempotent: a second run
# with the binaries in place does nothing. The tests and `make bench-serve` start
# throwaway clusters from these binaries (see README, "The gallery in PostgreSQL").
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.1.4
dest=.cache/pgserver-$version
stamp="$dest/.unpacked"
if [[ -f "$stamp" ]]; then
    exit 0
fi
mkdir -p .cache/wheels
if ! ls .cache/wheels/pgserver-"$version"-*.whl >/dev/null 2>&1; then
    python3 -m pip download --no-deps --only-binary=:all: --dest .cache/wheels \
        "pgserver==$version"
fi
wheel=$(ls .cache/wheels/pgserver-"$version"-*.whl | head -n1)
tmp=$(mktemp -d .cache/pgserver.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile, os, stat
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(("pgserver/pginstall/", "pgserver.libs/")):
            continue
        path = z.extract(info, out)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
PY
rm -rf "$dest"
mkdir -p "$tmp/out"
mv "$tmp/pgserver" "$tmp/pgserver.libs" "$tmp/out/"
mv "$tmp/out" "$dest"
# Binaries lose their x bit in some wheels; bin/ holds only executables.
chmod -R a+rX "$dest"
chmod a+x "$dest"/pgserver/pginstall/bin/*
touch "$stamp"
echo "pgserver $version unpacked in $dest/pgserver/pginstall"
