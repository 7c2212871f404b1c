#!/usr/bin/env python3
"""Reads a whole media file (FLV, Enhanced FLV, MP4) with FFmpeg 8 (PyAV), decoding it.

    probe_file.py FILE
    probe_file.py --listen rtmp://127.0.0.1:PORT/APP/STREAM [--timeout S]

With --listen it is an RTMP server (FFmpeg's listen mode) for one publisher and reads what
that publisher sends until it closes; the read error that closing gives, after media came,
is reported as "ended", not as an error. The port opens a moment after start: the publisher
must retry its connect.

Prints one JSON line: each stream's codec, size or rate/channels; per stream the number of
packets, the md5 and PTS (ms) of every packet in file order, the frames decoded and, for
audio, the samples decoded and the first/last frame time in seconds; decode errors
(exceptions and FFmpeg error log lines) and the open error, if any. Exits 1 on an open or
read error.
"""

import argparse
import hashlib
import json
import sys

import av


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--listen", action="store_true")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    path = args.path
    options = {}
    if args.listen:
        options = {"listen": "1", "rw_timeout": str(int(args.timeout * 1e6))}
    result = {"path": path, "streams": [], "decode_errors": [], "error": None}
    per = {}
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            src = av.open(path, options=options, timeout=args.timeout)
            for s in src.streams:
                cc = s.codec_context
                # FLV script data other than onMetaData (the VP9/AV1 onFrameTime clock)
                # is a data stream in FFmpeg: no codec, nothing to decode.
                if cc is None:
                    result["streams"].append({"index": s.index, "type": s.type, "codec": None})
                    continue
                info = {"index": s.index, "type": s.type, "codec": cc.codec.name}
                if s.type == "video":
                    info.update(width=cc.width, height=cc.height)
                elif s.type == "audio":
                    info.update(sample_rate=cc.sample_rate, channels=cc.channels)
                result["streams"].append(info)
                per[s.index] = {"packets": 0, "md5": [], "keyframes": 0, "frames": 0,
                                "samples": 0, "first_s": None, "last_s": None, "pts_ms": []}
            for pkt in src.demux():
                if pkt.stream.codec_context is None:
                    continue
                p = per[pkt.stream.index]
                # The empty packet at the end of each stream flushes its decoder.
                if not (pkt.size == 0 and pkt.dts is None):
                    p["packets"] += 1
                    p["md5"].append(hashlib.md5(bytes(pkt)).hexdigest())
                    p["keyframes"] += 1 if pkt.is_keyframe else 0
                    if pkt.pts is not None:
                        p["pts_ms"].append(float(pkt.pts * pkt.time_base) * 1000)
                try:
                    for f in pkt.decode():
                        p["frames"] += 1
                        if pkt.stream.type == "audio":
                            p["samples"] += f.samples
                            if f.pts is not None:
                                t = float(f.pts * f.time_base)
                                if p["first_s"] is None:
                                    p["first_s"] = t
                                p["last_s"] = t + f.samples / f.sample_rate
                except av.error.FFmpegError as e:
                    result["decode_errors"].append(f"stream {pkt.stream.index}: {e}")
            src.close()
        except Exception as e:
            got_media = any(p["packets"] for p in per.values())
            key = "ended" if args.listen and got_media else "error"
            result[key] = f"{type(e).__name__}: {e}"
    result["decode_errors"] += [m for (_lvl, _name, m) in logs]
    for s in result["streams"]:
        s.update(per.get(s["index"], {}))
    print(json.dumps(result))
    sys.exit(1 if result["error"] else 0)


if __name__ == "__main__":
    main()
