#!/usr/bin/env bash
# carecall and Janus under the same load, side by side: installs Debian's
# janus if missing (and keeps its system service off), builds the release
# binaries, and runs `carecall-load --pin --lite-viewers --lite-publishers
# compare`, which starts a fresh carecall on loopback and a fresh Janus in a
# network namespace of its own for each scenario and prints the ratio table.
# Every participant is a str0m session, many to a task, so a large fan-out
# or 100 rooms of 3 measure the servers, not the load tool. Needs root (the
# namespace).
# Arguments go to `compare`, e.g. --fanout 50,200 --thumbnails 500
# --rooms 10,50 --seconds 20.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v janus >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq janus >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now janus >/dev/null 2>&1 || true
  fi
fi
cargo build --release --locked -p carecall -p carecall-load
# The server on core 0 and the load tool on the others, where there are two.
pin=()
[ "$(nproc)" -ge 2 ] && pin=(--pin)
exec target/release/carecall-load "${pin[@]}" --lite-viewers --lite-publishers compare "$@"
