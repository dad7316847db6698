#!/usr/bin/env bash
# Runs carecall from source with its demo defaults: builds it first. The one
# build tool a fresh Debian machine lacks is cmake (the bundled libopus that
# mixes recordings is built with it); it is installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/build-tools.sh
. deploy/build-tools.sh
exec cargo run --release -- serve "$@"
