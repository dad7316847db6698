#!/usr/bin/env bash
# The room's instructions per forwarded datagram in a room of three
# (benches/instructions.rs), counted by callgrind: two runs of one build
# agree within 0.2%, so a change to the forwarding path shows even where
# this machine's timings move by a third. Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo bench --locked --bench instructions --no-run --message-format=json >"$out/build.json" 2>"$out/build.log" ||
  { cat "$out/build.log" >&2; exit 1; }
bin=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "instructions" and m.get("executable"):
        print(m["executable"])' "$out/build.json")
[ -x "$bin" ] || { echo "the instructions bench was not built" >&2; exit 1; }
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
case "$warm$total$forwarded" in
  *[!0-9]* | "") echo "no count read (warm '$warm', total '$total', forwarded '$forwarded')" >&2; exit 1 ;;
esac
# Nothing counted in the frames: the functions named above were renamed or
# inlined, and the script counts nothing.
if [ "$warm" -eq 0 ] || [ "$total" -le "$warm" ]; then
  echo "callgrind counted nothing in the room: were its functions renamed?" >&2
  exit 1
fi
counted=$((total - warm))
echo "room of three, $frames frames: $forwarded datagrams forwarded, $counted instructions in the room, $((counted / forwarded)) per forwarded datagram"
