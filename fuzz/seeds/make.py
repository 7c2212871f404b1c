#!/usr/bin/env python3
"""Regenerates the fuzz seed corpora in fuzz/seeds/<target>/ from real bytes.

- flv_demux: a short FLV (H.264 + AAC) from ffmpeg, cut to a few KB.
- avc_aac_config: the AVCDecoderConfigurationRecord, SPS, PPS, AudioSpecificConfig and
  tag headers out of that FLV.
- amf: its onMetaData body and the AMF0 commands an RTMP publisher and player send.
- rtmp_ingest: what ffmpeg sends when publishing live/cam to onair (handshake, connect, publish,
  metadata, sequence headers, first frames), recorded by a relay in front of
  `onair serve`, cut to 24 KB; once as the server reads it, once in small reads.
- eflv: the tag bodies of the Enhanced FLV test vectors FFmpeg 8 wrote
  (shared/src/eflv/testdata/), each behind the mode byte the target reads, plus their
  config records and a connect command announcing enhanced codecs.
- ts_mux: no seeds (its input is structured by `arbitrary`); it starts empty.

Needs ffmpeg and a built `onair` (cargo build --bin onair). Run from anywhere:
    python3 fuzz/seeds/make.py
Everything listens on 127.0.0.1 only.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ONAIR = os.path.join(ROOT, "target", "debug", "onair")


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ffmpeg_flv():
    cmd = [
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100",
        "-t", "0.4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "6",
        "-c:a", "aac", "-b:a", "32k", "-f", "flv", "-",
    ]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def flv_tags(flv):
    at = struct.unpack(">I", flv[5:9])[0] + 4
    while at + 11 <= len(flv):
        kind = flv[at] & 0x1F
        size = int.from_bytes(flv[at + 1:at + 4], "big")
        body = flv[at + 11:at + 11 + size]
        if len(body) < size:
            return
        yield kind, body
        at += 11 + size + 4


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(n):
    return b"\x00" + struct.pack(">d", n)


def amf_obj(props):
    out = b"\x03"
    for k, v in props:
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb + v
    return out + b"\x00\x00\x09"


NULL = b"\x05"


def commands():
    connect = amf_str("connect") + amf_num(1) + amf_obj([
        ("app", amf_str("live")), ("type", amf_str("nonprivate")),
        ("flashVer", amf_str("FMLE/3.0 (compatible; Lavf)")),
        ("tcUrl", amf_str("rtmp://127.0.0.1:1935/live")),
    ])
    return {
        "connect": connect,
        "create_stream": amf_str("createStream") + amf_num(2) + NULL,
        "release_stream": amf_str("releaseStream") + amf_num(3) + NULL + amf_str("t"),
        "fc_publish": amf_str("FCPublish") + amf_num(4) + NULL + amf_str("t"),
        "publish": amf_str("publish") + amf_num(5) + NULL + amf_str("t?key=x") + amf_str("LIVE"),
        "play": amf_str("play") + amf_num(5) + NULL + amf_str("t") + amf_num(-2000),
        "delete_stream": amf_str("deleteStream") + amf_num(6) + NULL + amf_num(1),
        "strict_array": b"\x0a\x00\x00\x00\x02" + amf_num(1) + amf_str("x"),
        "ecma_array": b"\x08\x00\x00\x00\x01" + struct.pack(">H", 1) + b"w" + amf_num(320)
        + b"\x00\x00\x09",
    }


def chunk(csid, type_id, stream_id, payload, ts=0, size=128):
    """One RTMP message as fmt-0 + fmt-3 chunks at chunk size `size`."""
    out = bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big")
    out += bytes([type_id]) + struct.pack("<I", stream_id)
    for i in range(0, max(len(payload), 1), size):
        if i:
            out += bytes([0xC0 | csid])
        out += payload[i:i + size]
    return out


def minimal_sessions():
    """Short synthetic sessions (plain handshake, then commands and a few media messages),
    which the fuzzer mutates far faster than a capture."""
    hs = b"\x03" + bytes(range(256)) * 6 + bytes(1536)
    c = commands()
    publish = hs + chunk(3, 20, 0, c["connect"]) + chunk(3, 20, 0, c["create_stream"])
    publish += chunk(4, 20, 1, c["publish"])
    publish += chunk(4, 18, 1, amf_str("@setDataFrame") + amf_str("onMetaData")
                     + b"\x08\x00\x00\x00\x01" + struct.pack(">H", 5) + b"width"
                     + amf_num(320) + b"\x00\x00\x09")
    return {
        "minimal_publish": publish,
        "minimal_play": hs + chunk(3, 20, 0, c["connect"]) + chunk(3, 20, 0, c["create_stream"])
        + chunk(8, 20, 1, c["play"]),
        "minimal_control": hs + chunk(2, 1, 0, struct.pack(">I", 4096))
        + chunk(2, 5, 0, struct.pack(">I", 2500000)) + chunk(2, 4, 0, b"\x00\x06\x00\x00\x00\x01")
        + chunk(2, 3, 0, struct.pack(">I", 100)) + chunk(3, 20, 0, c["connect"]),
    }


class Relay:
    """Forwards one TCP connection to `upstream`, recording what the client sends."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.recorded = bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        client, _ = self.sock.accept()
        server = socket.create_connection(self.upstream)

        def pump(src, dst, record):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if record:
                        self.recorded += data
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(server, client, False), daemon=True).start()
        pump(client, server, True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def record_publish():
    rtmp, http = free_port(), free_port()
    server = subprocess.Popen(
        [ONAIR, "serve", "--rtmp-addr", f"127.0.0.1:{rtmp}", "--http-addr", f"127.0.0.1:{http}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", rtmp)).close()
                break
            except OSError:
                time.sleep(0.05)
        relay = Relay(("127.0.0.1", rtmp))
        subprocess.run([
            "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100", "-t", "1",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac", "-b:a", "32k",
            "-f", "flv", f"rtmp://127.0.0.1:{relay.port}/live/cam",
        ], check=True, timeout=60)
        time.sleep(0.3)
        return bytes(relay.recorded)
    finally:
        server.terminate()
        server.wait()


def eflv_seeds():
    """Mode byte (0 video, 1 audio, 2 hvcC, 3 av1C, 4 vpcC, 5 OpusHead, 6 FLAC, 7 connect
    AMF) and the bytes, from the committed FFmpeg 8 Enhanced FLV vectors."""
    testdata = os.path.join(ROOT, "shared", "src", "eflv", "testdata")
    config_mode = {b"hvc1": 2, b"av01": 3, b"vp09": 4, b"Opus": 5, b"fLaC": 6}
    for name in sorted(os.listdir(testdata)):
        if not name.endswith(".flv"):
            continue
        with open(os.path.join(testdata, name), "rb") as f:
            flv = f.read()
        for i, (kind, body) in enumerate(flv_tags(flv)):
            if kind not in (8, 9):
                continue
            stem = name[:-4]
            write("eflv", f"{stem}_{i}", bytes([0 if kind == 9 else 1]) + body)
            # An ex-header sequence start: FourCC at 1..5, the record after it.
            ex_header = body[0] & 0x80 if kind == 9 else body[0] >> 4 == 9
            if ex_header and body[0] & 0x0F == 0:
                mode = config_mode.get(body[1:5])
                if mode is not None:
                    write("eflv", f"{stem}_config", bytes([mode]) + body[5:])
    connect = amf_str("connect") + amf_num(1) + amf_obj([
        ("app", amf_str("live")),
        ("fourCcList", b"\x0a\x00\x00\x00\x02" + amf_str("hvc1") + amf_str("av01")),
        ("videoFourCcInfoMap", amf_obj([("*", amf_num(4))])),
        ("capsEx", amf_num(2)),
    ])
    write("eflv", "connect", b"\x07" + connect)


def main():
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed")
    for t in ("flv_demux", "avc_aac_config", "amf", "rtmp_ingest", "eflv"):
        shutil.rmtree(os.path.join(HERE, t), ignore_errors=True)

    flv = ffmpeg_flv()
    # flv_demux: 4 bytes of piece-size seed and a limit selector, then FLV bytes.
    write("flv_demux", "ffmpeg_h264_aac", b"\x2a\x00\x00\x00\x00" + flv[:12000])
    write("flv_demux", "ffmpeg_small_pieces", b"\x07\x00\x00\x00\x00" + flv[:3000])

    video_n = audio_n = 0
    for kind, body in flv_tags(flv):
        if kind == 18:
            write("amf", "on_metadata", b"\x10" + body)
        elif kind == 9 and body[:2] == b"\x17\x00":
            record = body[5:]
            write("avc_aac_config", "avcc_record", record)
            sps_len = int.from_bytes(record[6:8], "big")
            sps = record[8:8 + sps_len]
            write("avc_aac_config", "sps", sps)
            write("avc_aac_config", "pps", record[8 + sps_len + 3:])
            write("avc_aac_config", "video_seq_tag", body)
        elif kind == 9 and video_n < 2:
            video_n += 1
            write("avc_aac_config", f"video_tag_{video_n}", body[:200])
        elif kind == 8 and body[:2] == b"\xaf\x00":
            write("avc_aac_config", "asc", body[2:])
            write("avc_aac_config", "audio_seq_tag", body)
        elif kind == 8 and audio_n < 1:
            audio_n += 1
            write("avc_aac_config", "audio_tag", body)
    write("avc_aac_config", "enhanced_hevc_tag", b"\x91hvc1\x00\x00\x10")
    write("avc_aac_config", "annexb", b"\x00\x00\x00\x01\x67\x64\x00\x1f\x00\x00\x01\x68\xeb")

    for name, payload in commands().items():
        write("amf", name, b"\x10" + payload)

    flv_tags_list = list(flv_tags(flv))
    for name, session in minimal_sessions().items():
        if name == "minimal_publish":
            # Add the capture's sequence headers and first frames, as ffmpeg sends them.
            for kind, body in flv_tags_list[1:6]:
                session += chunk(6 if kind == 9 else 7, kind, 1, body)
        write("rtmp_ingest", name, b"\x00" + session)

    if os.path.exists(ONAIR):
        publish = record_publish()
        if len(publish) < 3073 + 100:
            sys.exit(f"recorded only {len(publish)} bytes of the publish")
        # rtmp_ingest: a mode byte (read size; 0 = as the server reads), then the bytes.
        write("rtmp_ingest", "ffmpeg_publish", b"\x00" + publish[:24000])
        write("rtmp_ingest", "ffmpeg_publish_small_reads_tight_limits", b"\x85" + publish[:8000])
    else:
        print(f"{ONAIR} not built: rtmp_ingest seeds skipped (cargo build --bin onair)")

    eflv_seeds()

    total = 0
    for dirpath, _, files in os.walk(HERE):
        for f in files:
            if dirpath != HERE:
                total += os.path.getsize(os.path.join(dirpath, f))
    print(f"seeds written: {total} bytes")


if __name__ == "__main__":
    main()
