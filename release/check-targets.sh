#!/usr/bin/env bash
# Type-checks and lints the crate for platforms whose wheels only the
# release workflow builds (macOS, Windows): `cargo clippy -D warnings` for
# each target, with zig (from PyPI) as the C compiler for aws-lc-sys.
# Nothing is linked: that needs the platform's SDK. A target without its
# Rust standard library is skipped with a line saying so.
#
#   release/check-targets.sh [TARGET...]   # default: all three below
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ $# -gt 0 ] || set -- aarch64-apple-darwin x86_64-apple-darwin x86_64-pc-windows-gnu

"$PY" -m pip install -q --disable-pip-version-check "ziglang==0.17.1"
zig="$("$PY" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
installed="$(rustup target list --installed 2>/dev/null || true)"
shims="$(mktemp -d)"
trap 'rm -rf "$shims"' EXIT

status=0
for target in "$@"; do
  if ! grep -qx "$target" <<<"$installed"; then
    echo "$target: skipped (its Rust standard library is not installed: rustup target add $target)"
    continue
  fi
  case "$target" in
    aarch64-apple-darwin) ztarget=aarch64-macos ;;
    x86_64-apple-darwin) ztarget=x86_64-macos ;;
    x86_64-pc-windows-gnu) ztarget=x86_64-windows-gnu ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  # cc-rs passes clang's own --target spelling, which zig does not take.
  cc="$shims/cc-$target"
  cat >"$cc" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do case "\$a" in --target=*|-mmacosx-version-min=*) ;; *) args+=("\$a") ;; esac; done
exec "$zig" cc -target $ztarget "\${args[@]}"
EOF
  chmod +x "$cc"
  var="${target//-/_}"
  if env "CC_$var=$cc" "AR_$var=$zig ar" \
    cargo clippy -q --all-targets --target "$target" \
    --target-dir "${CARGO_TARGET_DIR:-$HOME/.cache/undipy/target-check}" -- -D warnings; then
    echo "$target: clippy clean"
  else
    echo "FAIL: $target" >&2
    status=1
  fi
done
exit "$status"
