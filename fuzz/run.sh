#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10), starting from the
# seed corpus in fuzz/corpus/TARGET; fails on the first crash, leaving the
# input in fuzz/artifacts/TARGET. Installs cargo-fuzz if it is missing.
# The stable toolchain has no sanitizers, so targets build with
# `--sanitizer none` (coverage-guided, panics and overflow checks caught);
# see docs/testing.md for a longer run and for AddressSanitizer. With
# --dev the targets build unoptimised: under half the build time, fewer runs
# a second; CI's short run uses it.
#   fuzz/run.sh [--dev] [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
profile=(--debug-assertions)
if [ "${1:-}" = "--dev" ]; then
  profile=(--dev)
  shift
fi
seconds="${1:-10}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build --sanitizer none "${profile[@]}"
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  set +e
  cargo fuzz run --sanitizer none "${profile[@]}" "$t" "$work" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$work.log" 2>&1
  status=$?
  set -e
  runs=$(grep -oE "^stat::number_of_executed_units: [0-9]+" "$work.log" | grep -oE "[0-9]+$" || echo 0)
  echo "fuzz $t: $runs runs in ${seconds}s, exit $status"
  if [ "$status" -ne 0 ]; then
    tail -40 "$work.log" >&2
    echo "fuzz target $t failed: the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  rm -rf "$work" "$work.log"
done
