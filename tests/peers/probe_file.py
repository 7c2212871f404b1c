#!/usr/bin/env python3
"""Reads a whole media file (FLV, Enhanced FLV, MP4) with FFmpeg 8 (PyAV), decoding it.

    probe_file.py FILE

Prints one JSON line: each stream's codec, size or rate/channels; per stream the number of
packets, the md5 and PTS (ms) of every packet in file order, the frames decoded and, for
audio, the samples decoded and the first/last frame time in seconds; decode errors
(exceptions and FFmpeg error log lines) and the open error, if any. Exits 1 on an open or
read error.
"""

import hashlib
import json
import sys

import av


def main():
    path = sys.argv[1]
    result = {"path": path, "streams": [], "decode_errors": [], "error": None}
    per = {}
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            src = av.open(path)
            for s in src.streams:
                cc = s.codec_context
                info = {"index": s.index, "type": s.type, "codec": cc.codec.name}
                if s.type == "video":
                    info.update(width=cc.width, height=cc.height)
                elif s.type == "audio":
                    info.update(sample_rate=cc.sample_rate, channels=cc.channels)
                result["streams"].append(info)
                per[s.index] = {"packets": 0, "md5": [], "keyframes": 0, "frames": 0,
                                "samples": 0, "first_s": None, "last_s": None, "pts_ms": []}
            for pkt in src.demux():
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
            result["error"] = f"{type(e).__name__}: {e}"
    result["decode_errors"] += [m for (_lvl, _name, m) in logs]
    for s in result["streams"]:
        s.update(per[s["index"]])
    print(json.dumps(result))
    sys.exit(1 if result["error"] else 0)


if __name__ == "__main__":
    main()
