#!/usr/bin/env bash
# Installs what building carecall needs beyond Rust and a C compiler: cmake,
# for the bundled libopus. Sourced by serve.sh and docker-steps.sh.
if ! command -v cmake >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing cmake (to build the bundled libopus)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends cmake >/dev/null
fi
