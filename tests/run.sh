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

step "ruff"
ruff check python tests benches
step "mypy --strict"
mypy --strict python/undipy

# What users install is what is tested: the manylinux wheel release/build.sh
# makes, in a fresh environment with no Rust toolchain on its PATH; pytest,
# the storm and the soak import undipy from there, not from the sources.
step "the x86_64 manylinux wheel (release/build.sh, zig)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
OUT="$work/dist" PYTHON="$PY" CARGO_TARGET_DIR="$HOME/.cache/undipy/target-zig" \
  bash release/build.sh --profile ci --wheel-only x86_64-unknown-linux-gnu

step "a fresh environment with the wheel, and no cargo or rustc on PATH"
"$PY" -m venv "$work/env"
TPY="$work/env/bin/python"
"$TPY" -m pip install -q --disable-pip-version-check \
  "pytest>=8" "pytest-asyncio>=1.4" pytest-timeout uvloop websockets trustme hypothesis Brotli zstandard opentelemetry-api opentelemetry-sdk basedpyright \
  -r docs/requirements.txt "$work"/dist/*.whl
norust="$work/env/bin"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -x "$d/cargo" ] || [ -x "$d/rustc" ] || norust="$norust:$d"
done
in_env() { env PATH="$norust" "$@"; }
in_env sh -c '! command -v cargo && ! command -v rustc' >/dev/null
in_env "$TPY" -c 'import undipy, sys; assert "site-packages" in undipy.__file__, undipy.__file__; print("undipy", undipy.__version__, "from", undipy.__file__)'

step "pytest"
in_env "$TPY" -m pytest -q -p no:cacheprovider "$@"

step "cancellation storm (short)"
in_env "$TPY" benches/storm.py --short

step "fault-injecting soak (short)"
in_env "$TPY" benches/soak.py --short

step "fuzz the codec (a minute, the three targets side by side)"
CARGO_TARGET_DIR="$HOME/.cache/undipy/fuzz-target" bash fuzz/run.sh 60
