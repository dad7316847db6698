#!/usr/bin/env bash
# Runs deploy/Dockerfile's steps on this host, for machines that cannot pull
# its base images: the builder stage (cmake, then the release build), then the
# runtime stage's layout in a temporary directory, then the binary's --version
# and a check of the image's configuration file.
# Debian or Ubuntu; installs cmake with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builder stage: cmake for the bundled libopus.
# shellcheck source=deploy/build-tools.sh
. deploy/build-tools.sh
cargo build --release --locked --bin carecall

# Runtime stage: the same paths as the image, under a temporary root.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 target/release/carecall "$root/usr/local/bin/carecall"
install -D -m 0644 deploy/docker/carecall.toml "$root/etc/carecall/carecall.toml"
install -d -m 0700 "$root/var/lib/carecall"
echo "runtime layout in $root:"
(cd "$root" && find . -mindepth 1 | sort)

"$root/usr/local/bin/carecall" --version
"$root/usr/local/bin/carecall" config check "$root/etc/carecall/carecall.toml"
