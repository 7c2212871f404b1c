// The WebRTC engine: WHEP (POST an SDP offer to /{app}/{stream}/whep, 201 with the answer
// and a Location to DELETE at the end), receive-only H.264 + Opus. Latency stays honest:
// where the browser lets the page read encoded frames (Chromium's encoded insertable
// streams), the pusher's SEI capture clock is read from each frame and keyed by its RTP
// timestamp, which requestVideoFrameCallback gives for the frame shown.

import { clockFromAnnexB, inbound, summarize } from './rtcstats.js';

/** How long to wait for ICE gathering before sending the offer (the server is ICE-lite
 *  and answers checks from any candidate; host candidates come within milliseconds). */
const GATHER_WAIT_MS = 1000;

export async function createWebRtc(video, url, hooks) {
  if (typeof RTCPeerConnection !== 'function') {
    throw new Error('this browser has no WebRTC');
  }
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', encodedInsertableStreams: true });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  let failed = false;
  let location = null;
  let stats = { jitterBufferMs: null, lossPct: null, lost: null, bps: null };
  let prev = null;
  const fail = (msg) => {
    if (failed) return;
    failed = true;
    hooks.onError(msg);
  };
  const media = new MediaStream();
  pc.ontrack = (e) => {
    media.addTrack(e.track);
    if (e.track.kind === 'video') readClock(e.receiver, hooks);
    else passThrough(e.receiver);
    if (video.srcObject !== media) video.srcObject = media;
    play(video);
  };
  pc.onconnectionstatechange = () => {
    if (['failed', 'closed'].includes(pc.connectionState)) fail(`WebRTC connection ${pc.connectionState}`);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, GATHER_WAIT_MS);
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const body = await r.text();
  if (r.status !== 201) {
    pc.close();
    throw new Error(`WHEP answered ${r.status}: ${body.trim()}`);
  }
  location = r.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  const timer = setInterval(async () => {
    try {
      const cur = inbound(await pc.getStats(), 'video');
      stats = summarize(prev, cur);
      prev = cur;
    } catch {
      // Closed meanwhile.
    }
  }, 1000);
  return {
    proto: 'webrtc',
    bitrateBps: () => stats.bps || 0,
    rtcStats: () => stats,
    destroy() {
      failed = true;
      clearInterval(timer);
      pc.close();
      video.srcObject = null;
      if (location) fetch(location, { method: 'DELETE' }).catch(() => {});
    },
  };
}

function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

/** Reads the pusher's clock from each encoded frame on its way to the decoder (Chromium);
 *  frames pass unchanged. Elsewhere it does nothing and the overlay says so. */
function readClock(receiver, hooks) {
  if (typeof receiver.createEncodedStreams !== 'function') return;
  let streams;
  try {
    streams = receiver.createEncodedStreams();
  } catch {
    return;
  }
  const transform = new TransformStream({
    transform(frame, controller) {
      try {
        const clock = clockFromAnnexB(new Uint8Array(frame.data));
        const rtp = frame.getMetadata?.().rtpTimestamp ?? frame.timestamp;
        // Keyed like the ClockMap's media times: ms on the 90 kHz RTP clock.
        if (clock && rtp != null) hooks.onClock(rtp / 90, clock.wallclockMs, clock.frame);
      } catch {
        // A frame we cannot read still plays.
      }
      controller.enqueue(frame);
    },
  });
  streams.readable.pipeThrough(transform).pipeTo(streams.writable).catch(() => {});
}

/** With `encodedInsertableStreams` on, Chromium hands a receiver's frames to its decoder
 *  only through the page: a receiver whose encoded streams are never piped decodes nothing
 *  (the audio was silent: packets received, no samples played). Audio passes unchanged. */
function passThrough(receiver) {
  if (typeof receiver.createEncodedStreams !== 'function') return;
  try {
    const streams = receiver.createEncodedStreams();
    streams.readable.pipeTo(streams.writable).catch(() => {});
  } catch {
    // Not available for this receiver: its frames go to the decoder directly.
  }
}

function play(video) {
  const p = video.play();
  if (p && p.catch) p.catch(() => {});
}
