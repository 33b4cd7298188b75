#!/usr/bin/env bash
# Builds the codec fuzz targets and runs them side by side, each for SECONDS
# (default 60).
#
#   fuzz/run.sh [SECONDS]
#
# New inputs the fuzzer finds go to a scratch corpus beside the build
# ($CARGO_TARGET_DIR/fuzz-corpus/<target>); fuzz/corpus/<target> (the seeds
# kept in the repo) is only read. A crash, a failed property, a timeout
# (-timeout, default 10 s per input) or going over -rss_limit_mb fails the run
# (non-zero exit) and leaves the input in fuzz/artifacts/<target>/.
#
# Environment:
#   CARGO_TARGET_DIR   build directory, outside the clone so builds are reused
#   FUZZ_SANITIZER     none (default: ~4x the executions of address, and the
#                      codec is safe Rust) or address (needs nightly)
#   FUZZ_TOOLCHAIN     rustup toolchain; default: the default toolchain (stable
#                      builds the targets with -s none), nightly for address
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/undipy/fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" = none ]; then
  toolchain="${FUZZ_TOOLCHAIN:-}"
else
  toolchain="${FUZZ_TOOLCHAIN:-nightly}"
fi
cargo=(cargo ${toolchain:+"+$toolchain"})
targets=(response_head response_body request_encoder)

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Release build with debug assertions and overflow checks.
"${cargo[@]}" fuzz build -O -a -s "$sanitizer"

# The targets run side by side (one process each), each for SECONDS of wall
# time; their output goes to a log each, printed when all are done.
logs="$(mktemp -d)"
pids=()
for t in "${targets[@]}"; do
  scratch="$CARGO_TARGET_DIR/fuzz-corpus/$t"
  mkdir -p "$scratch" "artifacts/$t"
  "${cargo[@]}" fuzz run -O -a -s "$sanitizer" "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$t" 2>&1 &
  pids+=("$!")
done
fail=0
for i in "${!targets[@]}"; do
  t="${targets[$i]}"
  status=0
  wait "${pids[$i]}" || status=$?
  printf '\n== fuzz %s (%ss)\n' "$t" "$secs"
  if [ "$status" -eq 0 ]; then
    grep -E '^(Done|stat::)' "$logs/$t" || true
  else
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$logs/$t" | tail -n 60
    echo "fuzz $t: FAILED (input in fuzz/artifacts/$t/)" >&2
    fail=1
  fi
done
rm -rf "$logs"
exit "$fail"
