#!/usr/bin/env bash
# Builds undipy and runs every test: Rust format, lints and unit tests,
# the Python lints and type check, pytest against loopback servers, then the
# short cancellation storm (benches/storm.py), the short fault-injecting
# soak (benches/soak.py) and a minute of fuzzing the codec (fuzz/run.sh).
#
# Needs: a Rust toolchain with clippy and rustfmt (added through rustup when
# missing), Python 3.11+ with venv; everything else is installed here, into a
# virtual environment of its own ($UNDIPY_VENV), never into the system's
# Python (which PEP 668 may forbid).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/undipy/target}"
VENV="${UNDIPY_VENV:-$HOME/.cache/undipy/venv}"

step() { printf '\n== %s\n' "$*"; }

as_root=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then as_root=(sudo); fi
apt_install() {
  local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" install -y -qq "$@" || { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq "$@"; }
}

step "toolchain"
for component in clippy rustfmt; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

step "virtual environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
fi
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
"$PY" -m pip install -q --disable-pip-version-check \
  "maturin>=1.9.4,<2" "pytest>=8" "pytest-asyncio>=1.4" pytest-timeout uvloop ruff mypy websockets trustme hypothesis Brotli zstandard opentelemetry-api opentelemetry-sdk

step "tinyproxy (the proxy tests run through a proxy nobody here wrote)"
if ! command -v tinyproxy >/dev/null && [ ! -x /usr/bin/tinyproxy ] && [ ! -x /usr/sbin/tinyproxy ]; then
  apt_install tinyproxy
  # The tests start their own; the package may have started a system daemon.
  "${as_root[@]}" service tinyproxy stop >/dev/null 2>&1 || true
fi

step "cargo fmt"
cargo fmt --check
step "cargo clippy"
cargo clippy --all-targets -- -D warnings
step "cargo test"
cargo test -q

step "build and install the wheel"
wheels="$(mktemp -d)"
maturin build -q --profile ci --out "$wheels"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/*.whl
rm -rf "$wheels"

step "ruff"
ruff check python tests benches
step "mypy --strict"
mypy --strict python/undipy

step "pytest"
"$PY" -m pytest -q -p no:cacheprovider "$@"

step "cancellation storm (short)"
"$PY" benches/storm.py --short

step "fault-injecting soak (short)"
"$PY" benches/soak.py --short

step "fuzz the codec (a minute, the three targets side by side)"
CARGO_TARGET_DIR="$HOME/.cache/undipy/fuzz-target" bash fuzz/run.sh 60
