#!/usr/bin/env bash
# carecall's whole test suite, from a fresh machine: installs what the tests
# need (Debian's chromium and chromium-driver; firefox-esr, and geckodriver
# from crates.io; iproute2 and iptables for the emulated poor networks, which
# also need root; cmake to build the bundled libopus; ffmpeg to check
# recordings; Debian's janus for the load tool's comparison run; npm, which
# fetches the pinned axe-core for the accessibility checks; faketime, which
# lets the reports test set the server's clock; Debian's postgresql, which the
# storage tests start throwaway clusters of), checks
# formatting and lints,
# then runs every unit, integration and browser test, each fuzz target for a
# few seconds, and checks the deployment files.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v janus >/dev/null 2>&1 || missing+=(janus)
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# libfaketime: the reports test sets the server's wall clock to a past week.
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
# PostgreSQL's server: stores that run on both engines are tested on both.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # The load tool starts its own Janus, on a private link; the package's
  # service (listening on every interface) is not wanted.
  if [[ " ${missing[*]} " == *" janus "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now janus >/dev/null 2>&1 || true
  fi
  # Likewise the package's own cluster: the tests start their own.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
fi
# promtool (Prometheus' linter, for /metrics and deploy/'s rules) comes in
# Debian's prometheus package; installing that would also start a
# Prometheus server, so only its files are unpacked, into target/tools.
if ! command -v promtool >/dev/null 2>&1; then
  tools="$PWD/target/tools"
  if [ ! -x "$tools/prometheus/usr/bin/promtool" ]; then
    echo "fetching promtool (Debian package prometheus, unpacked into target/tools)"
    mkdir -p "$tools"
    (cd "$tools" && rm -f prometheus_*.deb \
      && { apt-get download prometheus >/dev/null 2>&1 \
           || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; $sudo apt-get update -qq && apt-get download prometheus >/dev/null; }; } \
      && dpkg-deb -x prometheus_*.deb prometheus && rm -f prometheus_*.deb)
  fi
  export PATH="$tools/prometheus/usr/bin:$PATH"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# Firefox's WebDriver is not a Debian package; crates.io has it. Built
# unoptimised and without debug info (about half the release build's time: it
# only relays commands), in the background while the lints and tests build.
logs="$(mktemp -d)"
# A background build still running when this script stops (something failed
# first) is stopped too.
trap 'for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done; rm -rf "$logs"' EXIT
gecko=""
if ! command -v geckodriver >/dev/null 2>&1; then
  CARGO_PROFILE_DEV_DEBUG=0 cargo install geckodriver --locked --debug >"$logs/geckodriver" 2>&1 &
  gecko=$!
fi
# Waits for background job $1 (named $2), showing its log if it failed.
await() {
  [ -n "$1" ] || return 0
  if ! wait "$1"; then
    cat "$logs/$2" >&2
    echo "$2 failed" >&2
    exit 1
  fi
  cat "$logs/$2"
}

# A build from scratch gains nothing from incremental compilation's records.
export CARGO_INCREMENTAL=0
cargo fmt --all --check
# Lints and the test build in one compile: clippy-driver, what `cargo clippy`
# runs on the workspace's crates, also compiles them, so the dependencies
# build once (for the tests) instead of a second time for `cargo clippy`'s
# check: about three minutes less on two cores. Same lints, same -D warnings,
# every target (benches included).
clippy_driver="$(command -v clippy-driver)" || {
  echo "clippy-driver not found: rustup component add clippy" >&2
  exit 1
}
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --no-run --locked
await "$gecko" geckodriver
# axe-core for the accessibility checks, at the version tests/axe's lock pins.
(cd tests/axe && npm ci --no-audit --no-fund --loglevel=error)
# Two builds the tests do not need run beside them at idle priority
# (SCHED_IDLE: they get a core only when no test wants it), so the time the
# tests spend waiting on timers and networks is not lost: the Dockerfile's
# build steps, run on this host because CI cannot pull its base images (a
# release build), and the fuzz targets' build. They build without the
# lints' wrapper; the tests keep it, so nextest finds the test build above
# as it is instead of compiling the workspace's crates again (about a
# minute).
idle=(chrt --idle 0 nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS)
"${idle[@]}" deploy/docker-steps.sh >"$logs/docker-steps" 2>&1 &
steps=$!
(cd fuzz && exec "${idle[@]}" cargo fuzz build --sanitizer none --dev) >"$logs/fuzz-build" 2>&1 &
fuzz_build=$!
cargo nextest run --workspace --locked
# The storage and queue tests again, every server's records in a throwaway
# PostgreSQL (docs/scaling.md): mostly waiting, so beside the fuzz run. Same
# build and lints' wrapper as above, so nothing is compiled again.
CARECALL_TEST_DATABASE=postgres cargo nextest run --workspace --locked \
  -E 'binary(suite) & test(/^(queue|handover|hooks|records)::/)' >"$logs/postgres" 2>&1 &
postgres_run=$!
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
# The deployment files: the systemd unit, Prometheus rules, the Grafana
# dashboard, the Dockerfile (linted). Light work, also beside the fuzz run.
CARECALL_BIN=target/debug/carecall deploy/check.sh >"$logs/deploy-check" 2>&1 &
deploy_check=$!
await "$fuzz_build" fuzz-build
# Every fuzz target from its seed corpus, unoptimised, 4 s each (about one
# minute once built); docs/testing.md has the long runs.
fuzz/run.sh --dev 4
await "$postgres_run" postgres
await "$deploy_check" deploy-check
# The Dockerfile's build steps, run at idle priority since the build.
await "$steps" docker-steps
