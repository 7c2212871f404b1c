#!/usr/bin/env python3
"""Reads an rtmp:// or http:// (HTTP-FLV) URL with FFmpeg 8 (PyAV) for N seconds, decoding.

    readback.py URL [--seconds 5] [--codecs hvc1,av01,vp09,Opus] [--open-timeout 10]

--codecs is FFmpeg's rtmp_enhanced_codecs (the fourCcList a player announces in connect);
it only applies to rtmp://. The clock starts when the input is open. Prints one JSON line:
each stream's codec, size or rate/channels, frames decoded per stream, decode errors
(exceptions and FFmpeg error log lines) and the open or read error, if any; exits 1 on an
open/read error.
"""

import argparse
import json
import signal
import sys
import time

import av


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--codecs", default=None)
    ap.add_argument("--open-timeout", type=float, default=10.0)
    args = ap.parse_args()
    # A hard bound on the whole read, even inside FFmpeg's C code: no handler, so SIGALRM
    # ends the process, and the test fails on the missing report instead of hanging.
    signal.alarm(int(args.open_timeout + args.seconds) + 30)

    options = {"rw_timeout": str(int(args.open_timeout * 1e6))}
    if args.codecs and args.url.startswith("rtmp"):
        options["rtmp_enhanced_codecs"] = args.codecs
    result = {"url": args.url, "streams": [], "frames": {}, "decode_errors": [], "error": None}
    frames = {}
    # PyAV passes FFmpeg's log on only from a set level; errors are what we report.
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            src = av.open(args.url, options=options, timeout=args.open_timeout)
            for s in src.streams:
                cc = s.codec_context
                # FLV script data other than onMetaData (the VP9/AV1 onFrameTime clock)
                # is a data stream in FFmpeg: no codec, nothing to decode.
                if cc is None:
                    result["streams"].append({"index": s.index, "type": s.type, "codec": None})
                    continue
                info = {"index": s.index, "type": s.type, "codec": cc.codec.canonical_name}
                if s.type == "video":
                    info.update(width=cc.width, height=cc.height)
                elif s.type == "audio":
                    info.update(sample_rate=cc.sample_rate, channels=cc.channels)
                result["streams"].append(info)
            frames.update({s.index: 0 for s in src.streams})
            deadline = time.monotonic() + args.seconds
            for pkt in src.demux():
                if time.monotonic() >= deadline:
                    break
                if pkt.dts is None and pkt.size == 0 or pkt.stream.codec_context is None:
                    continue
                try:
                    frames[pkt.stream.index] += len(pkt.decode())
                except av.error.FFmpegError as e:
                    result["decode_errors"].append(f"stream {pkt.stream.index}: {e}")
            src.close()
        except Exception as e:
            result["error"] = f"{type(e).__name__}: {e}"
    # Frames decoded before an error count too: they say how far the read got.
    result["frames"] = {str(k): v for k, v in frames.items()}
    result["log_errors"] = [f"{name}: {msg.strip()}" for level, name, msg in logs
                            if level <= av.logging.ERROR]
    print(json.dumps(result))
    sys.exit(1 if result["error"] else 0)


if __name__ == "__main__":
    main()
