#!/usr/bin/env python3
"""Publishes a fixture file to an rtmp:// URL with FFmpeg 8 (PyAV), stream copy, in real time.

    publish.py URL FILE [--audio-tracks N] [--loops N]

FFmpeg 8's flv muxer writes Enhanced RTMP for HEVC, AV1, VP9, Opus, FLAC, AC-3 and E-AC-3
and for every track after the first of a kind (Multitrack) by itself. The connect command
carries no fourCcList: PyAV 18 opens an output's AVIOContext with avio_open() and no
options, so the rtmp_enhanced_codecs open option cannot reach a publisher's RTMP protocol
(it does reach a reader's: see readback.py). --audio-tracks keeps only the first N audio
tracks (0 = all). Packets are sent at their DTS against the wall clock, so a reader sees a live
stream. Prints one JSON line at the end: packets sent per stream, seconds, and the error
(with FFmpeg's error log lines) if the server refused or the connection failed; exits 1 then.
"""

import argparse
import json
import sys
import time

import av

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("file")
    ap.add_argument("--audio-tracks", type=int, default=0)
    ap.add_argument("--loops", type=int, default=1)
    args = ap.parse_args()

    src = av.open(args.file)
    streams = [s for s in src.streams if s.type == "video"]
    audio = [s for s in src.streams if s.type == "audio"]
    streams += audio[: args.audio_tracks] if args.audio_tracks else audio
    codecs = [s.codec_context.codec.canonical_name for s in streams]
    result = {"url": args.url, "file": args.file, "codecs": codecs, "sent": {}, "error": None}
    started = time.monotonic()
    sent = {s.index: 0 for s in streams}
    # PyAV passes FFmpeg's log on only from a set level; errors are what we report.
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            out = av.open(args.url, "w", format="flv")
            mapping = {s.index: out.add_stream_from_template(s, opaque=True) for s in streams}
            duration = 0.0
            for loop in range(args.loops):
                src.seek(0)
                offset = loop * duration
                last = 0.0
                for pkt in src.demux(streams):
                    if pkt.dts is None:
                        continue
                    at = float(pkt.dts * pkt.time_base) + offset
                    last = max(last, float((pkt.pts or pkt.dts) * pkt.time_base) + offset)
                    wait = started + at - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    shift = int(round(offset / pkt.time_base))
                    pkt.dts += shift
                    if pkt.pts is not None:
                        pkt.pts += shift
                    idx = pkt.stream.index
                    pkt.stream = mapping[idx]
                    out.mux(pkt)
                    sent[idx] += 1
                duration = max(duration, last - offset + 1 / 30)
            out.close()
        except Exception as e:  # the refusal we report is whatever FFmpeg raised
            result["error"] = f"{type(e).__name__}: {e}"
    # What was sent before an error says how far the server let the publish get.
    result["sent"] = {str(k): v for k, v in sent.items()}
    result["log_errors"] = [f"{name}: {msg.strip()}" for level, name, msg in logs
                            if level <= av.logging.ERROR]
    result["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result))
    sys.exit(1 if result["error"] else 0)


if __name__ == "__main__":
    main()
