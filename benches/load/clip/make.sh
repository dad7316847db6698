#!/usr/bin/env bash
# Makes the load peers' camera clip, in the three simulcast layers a browser
# sends (see signalling/client/call.js): 2 s of ffmpeg's moving test pattern
# at 1280x720 (about 1.1 Mbit/s), 640x360 (about 450 kbit/s) and 320x180
# (about 140 kbit/s), 25 frames/s, VP8 with one keyframe each (the first, so
# the loop restarts on one), encoded the way a browser's real-time encoder
# works (no lag, no alt-ref frames). Run once; the IVF files are kept in the
# repository so every run sends the same bytes.
set -euo pipefail
cd "$(dirname "$0")"
layer() { # size, bitrate, file
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=$1:rate=25" -t 2 \
    -c:v libvpx -g 50 -deadline realtime -cpu-used 8 \
    -b:v "$2" -minrate "$2" -maxrate "$2" \
    -error-resilient 1 -auto-alt-ref 0 -lag-in-frames 0 "$3"
}
layer 1280x720 1200k cam720.ivf
layer 640x360 480k cam360.ivf
layer 320x180 150k cam180.ivf
