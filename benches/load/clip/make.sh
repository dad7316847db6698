#!/usr/bin/env bash
# Makes the load peers' camera clip: 2 s of ffmpeg's moving test pattern at
# 1280x720, 25 frames/s, VP8 at about 1.1 Mbit/s with one keyframe (the
# first, so the loop restarts on one), encoded the way a browser's real-time
# encoder works (no lag, no alt-ref frames). Run once; the IVF file is kept
# in the repository so every run sends the same bytes.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25" -t 2 \
  -c:v libvpx -g 50 -deadline realtime -cpu-used 8 \
  -b:v 1200k -minrate 1200k -maxrate 1200k \
  -error-resilient 1 -auto-alt-ref 0 -lag-in-frames 0 cam720.ivf
