#!/usr/bin/env bash
# Runs carecall from source with its demo defaults: builds it first. The one
# build tool a fresh Debian machine lacks is cmake (the bundled libopus that
# mixes recordings is built with it); it is installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cmake >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing cmake (to build the bundled libopus)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq cmake >/dev/null
fi
exec cargo run --release -- serve "$@"
