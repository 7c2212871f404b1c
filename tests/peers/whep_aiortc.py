"""A WHEP viewer made of aiortc (an independent WebRTC stack): POSTs an offer to the
WHEP URL, plays for a while, and prints one JSON line: decoded video frames in the first
SECONDS after the first one, their size, and the dominant frequency of the decoded audio.

Loopback only: aiortc's host gathering is limited to 127.0.0.1 and no STUN server is
used, so nothing is sent beyond this machine. `--vanish` stops without DELETE (the
server must notice by ICE consent)."""

import argparse
import asyncio
import array
import json
import sys
import time
import urllib.request

import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402


def http(method, url, body=None, ctype=None):
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def dominant_frequency(samples, rate):
    """Zero crossings of a pure tone: two per period."""
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate) if samples else 0.0


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--vanish", action="store_true")
    args = ap.parse_args()

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    report = {"video_frames": 0, "width": 0, "height": 0, "audio_frames": 0,
              "audio_rate": 0, "audio_freq": 0.0, "status": 0}
    first_video = asyncio.get_running_loop().create_future()
    done = asyncio.Event()
    mono = []

    async def play_video(track):
        start = None
        while not done.is_set():
            try:
                frame = await asyncio.wait_for(track.recv(), 5)
            except Exception:
                return
            now = time.monotonic()
            if start is None:
                start = now
                if not first_video.done():
                    first_video.set_result(now)
            if now - start <= args.seconds:
                report["video_frames"] += 1
                report["width"], report["height"] = frame.width, frame.height

    async def play_audio(track):
        while not done.is_set():
            try:
                frame = await asyncio.wait_for(track.recv(), 5)
            except Exception:
                return
            report["audio_frames"] += 1
            report["audio_rate"] = frame.sample_rate
            # Skip the first second (decoder start), keep the next two of channel 0.
            if report["audio_frames"] > 50 and len(mono) < 2 * frame.sample_rate:
                pcm = array.array("h", bytes(frame.planes[0]))
                ch = len(frame.layout.channels)
                mono.extend(pcm[::ch][: frame.samples])

    tasks = []

    @pc.on("track")
    def on_track(track):
        if track.kind == "video":
            tasks.append(asyncio.ensure_future(play_video(track)))
        else:
            tasks.append(asyncio.ensure_future(play_audio(track)))

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await asyncio.to_thread(
        http, "POST", args.url, pc.localDescription.sdp.encode(), "application/sdp")
    report["status"] = status
    if status != 201:
        report["error"] = body.decode(errors="replace")
        print(json.dumps(report))
        return
    location = headers.get("Location") or headers.get("location")
    report["location"] = location
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    try:
        await asyncio.wait_for(first_video, 15)
        await asyncio.sleep(args.seconds + 0.5)
    except asyncio.TimeoutError:
        report["error"] = "no video within 15 s"
    done.set()
    report["audio_freq"] = round(dominant_frequency(mono, report["audio_rate"] or 48000), 1)
    report["audio_samples"] = len(mono)
    if args.vanish:
        # Leave without DELETE or DTLS close alert: just stop answering.
        print(json.dumps(report), flush=True)
        sys.stdout.flush()
        import os
        os._exit(0)
    base = args.url.split("/", 3)
    if location:
        st, _, _ = await asyncio.to_thread(http, "DELETE", "/".join(base[:3]) + location)
        report["delete_status"] = st
    await pc.close()
    print(json.dumps(report))


asyncio.run(main())
