#!/usr/bin/env bash
# Runs the pytest suite against an aarch64 wheel on this x86_64 machine:
# inside a Debian arm64 root (Python 3.11) under qemu's user-mode
# emulation, the wheel and the test dependencies' aarch64 wheels installed
# with pip into a fresh virtual environment there, as a user on an aarch64
# machine would. Loopback only, as every test. Slow (emulated), so it is a
# release check, not part of CI.
#
#   release/test-aarch64.sh dist/undipy-*-manylinux*_aarch64.whl [pytest args]
#
# Needs root: apt-get (qemu-user-static, debootstrap), binfmt_misc (so
# that the tests' child processes are emulated too), chroot and bind mounts.
# The arm64 root is unpacked once into $ROOT: debootstrap's first stage,
# then every downloaded package extracted; nothing is configured in it.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel="$(realpath "$1")"
shift
ROOT="${ROOT:-$HOME/.cache/undipy/arm64-root}"
PY="${PYTHON:-python3}"

command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true

if [ ! -x "$ROOT/usr/bin/python3.11" ] || [ ! -x "$ROOT/usr/bin/tinyproxy" ]; then
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv,tinyproxy \
    bookworm "$ROOT" http://deb.debian.org/debian >/dev/null
  for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$ROOT"; done
fi
# Unconfigured, the root has no hosts file; the tests name localhost.
[ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$ROOT/etc/hosts"

# The test dependencies' aarch64 wheels, fetched here (pip downloads for
# another platform) and installed inside from this folder only.
deps=("pytest>=8" "pytest-asyncio>=1.4" pytest-timeout uvloop websockets trustme
  Brotli zstandard hypothesis opentelemetry-api opentelemetry-sdk)
rm -rf "$ROOT/wheelhouse" && mkdir -p "$ROOT/wheelhouse" "$ROOT/src"
"$PY" -m pip download -q --disable-pip-version-check -d "$ROOT/wheelhouse" \
  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
  --python-version 3.11 --implementation cp --only-binary=:all: "${deps[@]}"
cp "$wheel" "$ROOT/wheelhouse/"

mounts=()
bind() { mount --bind "$1" "$ROOT$2" && mounts=("$ROOT$2" "${mounts[@]}"); }
trap 'for m in "${mounts[@]}"; do umount "$m"; done' EXIT
mount -t proc proc "$ROOT/proc" && mounts=("$ROOT/proc")
bind /dev /dev
bind "$PWD" /src
inside() {
  chroot "$ROOT" env -i HOME=/tmp PATH=/env/bin:/usr/bin:/bin LANG=C.UTF-8 UNDIPY_TEST_BENCH_SECONDS=3 "$@"
}

rm -rf "$ROOT/env"
inside /usr/bin/python3.11 -m venv /env
inside /env/bin/python -m pip install -q --disable-pip-version-check --no-index \
  --find-links /wheelhouse "${deps[@]}" undipy
inside /env/bin/python -c 'import platform, undipy; print("undipy", undipy.__version__, "on", platform.machine(), "from", undipy.__file__)'

# Everything but the docs site build and the type-completeness check,
# which need the docs toolchain and a Node.js binary: the wheel is the
# same Python code as on x86_64. Timeouts are scaled up for emulation.
[ $# -gt 0 ] || set -- tests --ignore tests/test_docs_site.py --ignore tests/test_typing.py
inside sh -c 'cd /src && exec python -m pytest -q -p no:cacheprovider --timeout 300 "$@"' pytest "$@"
