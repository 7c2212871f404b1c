#!/usr/bin/python3
"""Plays URL in GStreamer (uridecodebin3: hlsdemux2, the demuxer playbin3 uses) for SECONDS,
to fakesinks that keep the clock (sync=true), and prints JSON: every decoded video buffer's
PTS in seconds, the number of audio buffers, and any error.

The buffers are counted by pad probes on the sinks. gst-launch-1.0 -v reports them through
the sinks' last-message property notifications, which can skip or repeat a buffer, so
counting those saw "lost" frames that GStreamer had in fact rendered.

Debian's python3-gi and gir1.2-gstreamer-1.0 (scripts/install-deps.sh); run with the system
python3, which has them.
"""

import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    # A hung GStreamer must not hang the test.
    signal.alarm(int(seconds) + 30)
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"uridecodebin3 uri={url} name=d "
        "d. ! queue ! videoconvert ! fakesink name=vsink sync=true "
        "d. ! queue ! audioconvert ! fakesink name=asink sync=true"
    )
    video, audio = [], [0]

    def on_video(_pad, info):
        pts = info.get_buffer().pts
        if pts != Gst.CLOCK_TIME_NONE:
            video.append(pts / Gst.SECOND)
        return Gst.PadProbeReturn.OK

    def on_audio(_pad, _info):
        audio[0] += 1
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("vsink").get_static_pad("sink").add_probe(
        Gst.PadProbeType.BUFFER, on_video
    )
    pipeline.get_by_name("asink").get_static_pad("sink").add_probe(
        Gst.PadProbeType.BUFFER, on_audio
    )
    loop = GLib.MainLoop()
    errors = []

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            errors.append(f"{err.message} ({debug})")
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps({"url": url, "errors": errors, "video_pts": video, "audio_buffers": audio[0]}))


if __name__ == "__main__":
    main()
