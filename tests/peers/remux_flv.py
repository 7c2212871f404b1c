#!/usr/bin/env python3
"""Stream-copies a fixture into an FLV file with FFmpeg 8's flv muxer (PyAV).

    remux_flv.py IN OUT

HEVC, AV1, VP9, Opus and FLAC come out as Enhanced FLV, and a second track of a kind as
Multitrack messages, exactly as FFmpeg 8 would publish them over RTMP.
"""

import sys

import av


def main():
    src = av.open(sys.argv[1])
    out = av.open(sys.argv[2], "w", format="flv")
    mapping = {s.index: out.add_stream_from_template(s, opaque=True) for s in src.streams
               if s.type in ("video", "audio")}
    for pkt in src.demux(list(src.streams)):
        if pkt.dts is None or pkt.stream.index not in mapping:
            continue
        pkt.stream = mapping[pkt.stream.index]
        out.mux(pkt)
    out.close()


if __name__ == "__main__":
    main()
