#!/usr/bin/env bash
# The room's instructions per forwarded packet in a room of three
# (benches/instructions.rs), counted by callgrind: the same on every run of
# the same build, so a change to the forwarding path shows even where this
# machine's timings move by a third. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --locked --bench instructions --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "instructions" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Instructions in the room's own functions over the warm-up and `$1` frames.
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" --collect-atstart=no \
    --toggle-collect='carecall_sfu::sim::SimCall::receive_at_room' \
    --toggle-collect='carecall_sfu::room::Room::poll' \
    "$bin" "$1" >"$out/stdout.$1" 2>"$out/stderr.$1" || { cat "$out/stderr.$1" >&2; exit 1; }
  sed -n 's/.*Collected : *//p' "$out/stderr.$1" | tr -d ','
}
frames=200
warm=$(count 0)
total=$(count "$frames")
forwarded=$(sed -n 's/^forwarded //p' "$out/stdout.$frames")
counted=$((total - warm))
echo "room of three, $frames frames: $forwarded packets forwarded, $counted instructions in the room, $((counted / forwarded)) per forwarded packet"
