#!/usr/bin/env bash
# Fast inner loop for developers: debug build of the extension next to the
# Python sources, then pytest on them (no wheel, no lints). Args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q
# Copy then rename: overwriting a library that running tests have loaded crashes them.
cp "${CARGO_TARGET_DIR:-target}/debug/lib_undipy.so" python/undipy/.tmp_undipy.so
mv -f python/undipy/.tmp_undipy.so python/undipy/_undipy.abi3.so
PYTHONPATH=python exec python3 -m pytest -q -p no:cacheprovider "$@"
