// What the overlay shows of a WebRTC playback, from two getStats() snapshots of the
// inbound video RTP stream: the jitter buffer's delay over the interval, the packets lost
// in it, and the bit rate. Also the pusher's clock out of an encoded H.264 frame (Annex B,
// as Chromium's encoded transform hands it). Pure: values in, values out.

import { parseClockSeiNal } from './sei.js';

/** The inbound-rtp entry of `kind` in a stats report (a Map or an array of entries). */
export function inbound(report, kind) {
  const values = typeof report?.values === 'function' ? Array.from(report.values()) : report || [];
  return values.find((s) => s.type === 'inbound-rtp' && (s.kind || s.mediaType) === kind) || null;
}

/**
 * Between two inbound-rtp snapshots: `jitterBufferMs` (mean delay of frames that left the
 * jitter buffer in the interval), `lossPct` (lost / expected in the interval), `lost`
 * (since the start), `bps`. Fields are null when the interval does not tell.
 */
export function summarize(prev, cur) {
  if (!cur) return { jitterBufferMs: null, lossPct: null, lost: null, bps: null };
  const d = (k) => (prev && cur[k] != null && prev[k] != null ? cur[k] - prev[k] : null);
  const emitted = d('jitterBufferEmittedCount');
  const delay = d('jitterBufferDelay');
  const lost = d('packetsLost');
  const received = d('packetsReceived');
  const bytes = d('bytesReceived');
  const dt = prev && cur.timestamp != null && prev.timestamp != null ? (cur.timestamp - prev.timestamp) / 1000 : null;
  return {
    jitterBufferMs: emitted > 0 && delay != null ? (delay / emitted) * 1000 : null,
    lossPct: lost != null && received != null && lost + received > 0 ? (Math.max(0, lost) / (lost + received)) * 100 : null,
    lost: cur.packetsLost ?? null,
    bps: bytes != null && dt > 0 ? (bytes * 8) / dt : null,
  };
}

/** The NAL units of an Annex B byte stream (start codes 00 00 01 and 00 00 00 01). */
export function annexBNals(data) {
  const nals = [];
  let start = -1;
  let i = 0;
  while (i + 2 < data.length) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) nals.push(trimZeros(data, start, i));
      i += 3;
      start = i;
    } else {
      i++;
    }
  }
  if (start >= 0 && start < data.length) nals.push(data.subarray(start));
  return nals;
}

function trimZeros(data, from, to) {
  let end = to;
  while (end > from && data[end - 1] === 0) end--;
  return data.subarray(from, end);
}

/** The onair SEI clock in an encoded H.264 frame, or null. */
export function clockFromAnnexB(data) {
  for (const nal of annexBNals(data)) {
    if ((nal[0] & 0x1f) !== 6) continue;
    const c = parseClockSeiNal(nal);
    if (c) return c;
  }
  return null;
}
