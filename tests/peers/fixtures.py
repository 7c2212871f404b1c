#!/usr/bin/env python3
"""Encodes the Enhanced RTMP test fixtures once, small, into a cache directory.

Each fixture is 320x240, 8 s, 30 fps, a keyframe every second, with a 1 kHz sine:
  hevc_aac.mp4       (a) HEVC (libx265) + AAC
  av1_opus_aom.mkv   (b) AV1 (libaom-av1, realtime) + Opus. Not SVT-AV1: mpegts.js 1.8's AV1
                     frame header reader misreads its keyframes (it reads showable_frame for
                     shown frames, the reverse of the spec) and the browser player stops
  vp9_opus.mkv       (c) VP9 (libvpx-vp9) + Opus
  h264_aac_aac.mp4   (d) H.264 (libx264) + AAC + a second AAC track (880 Hz), for multitrack
  h264_aac.mp4       (d) without the second track: what today's server accepts
Encoding uses Debian's ffmpeg (5.1 has all these encoders); publishing and reading back use
FFmpeg 8 through PyAV (publish.py, readback.py). Existing files are kept, so tests never
encode live. A file is written under a temporary name and renamed when complete.

    python3 tests/peers/fixtures.py [DIR]      (default: target/fixtures)
Prints the directory's absolute path.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=8"]
TONE = ["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=8"]
TONE2 = ["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=8"]
GOP = ["-g", "30", "-pix_fmt", "yuv420p"]

FIXTURES = {
    "hevc_aac.mp4": VIDEO + TONE + GOP + [
        "-c:v", "libx265", "-preset", "fast", "-tag:v", "hvc1",
        "-x265-params", "log-level=error:keyint=30:min-keyint=30:info=0",
        "-c:a", "aac", "-b:a", "96k",
    ],
    "av1_opus_aom.mkv": VIDEO + TONE + GOP + [
        "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "400k",
        "-c:a", "libopus", "-b:a", "64k",
    ],
    "vp9_opus.mkv": VIDEO + TONE + GOP + [
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
        "-c:a", "libopus", "-b:a", "64k",
    ],
    "h264_aac_aac.mp4": VIDEO + TONE + TONE2 + GOP + [
        "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-b:a", "96k",
    ],
    "h264_aac.mp4": VIDEO + TONE + GOP + [
        "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-b:a", "96k",
    ],
}


def main():
    out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "fixtures"))
    os.makedirs(out_dir, exist_ok=True)
    for name, args in FIXTURES.items():
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            continue
        stem, ext = os.path.splitext(name)
        tmp = os.path.join(out_dir, f".{stem}.partial{ext}")
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-threads", "2"] + args + [tmp]
        # SVT_LOG=1: SVT-AV1 prints only errors.
        env = dict(os.environ, SVT_LOG="1")
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, env=env)
        os.replace(tmp, path)
    print(out_dir)


if __name__ == "__main__":
    main()
