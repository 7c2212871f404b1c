// The pusher's capture wall clock, carried in every H.264 frame as an SEI
// user_data_unregistered message (payload type 5). Layout (big-endian), as `onair push`
// writes it (pusher/src/mux/sei.rs):
//
//   16 bytes  UUID 6f6e6169-722d-7365-692d-636c6f636b21 (ASCII "onair-sei-clock!")
//    8 bytes  capture wall-clock time, microseconds since the Unix epoch (UTC)
//    4 bytes  frame counter (wraps at 2^32)
//
// Pure functions: bytes in, values out. No clock, no DOM.

/** The 16 UUID bytes. */
export const CLOCK_UUID = Uint8Array.from('onair-sei-clock!', (c) => c.charCodeAt(0));

const USER_DATA_UNREGISTERED = 5;
const PAYLOAD_LEN = 16 + 8 + 4;

/**
 * True when `uuid` is ours. Accepts the 16 bytes (mpegts.js gives a Uint8Array) or the
 * hex text with or without dashes (hls.js gives "6f6e6169-722d-…").
 */
export function isClockUuid(uuid) {
  if (uuid == null) return false;
  if (typeof uuid === 'string') {
    const hex = uuid.replace(/-/g, '').toLowerCase();
    return hex === toHex(CLOCK_UUID);
  }
  if (uuid.length !== 16) return false;
  for (let i = 0; i < 16; i++) if (uuid[i] !== CLOCK_UUID[i]) return false;
  return true;
}

/**
 * The clock from the bytes after the UUID (`user_data` in mpegts.js, `userDataBytes` in
 * hls.js): `{ wallclockMs, frame }`, or null when too short.
 */
export function parseClockUserData(userData) {
  if (!userData || userData.length < 12) return null;
  const view = new DataView(userData.buffer, userData.byteOffset, userData.byteLength);
  const us = view.getBigUint64(0, false);
  return {
    // Microseconds since 1970 stay below 2^53 for ages: Number keeps them exact.
    wallclockMs: Number(us) / 1000,
    frame: view.getUint32(8, false),
  };
}

/** Removes emulation-prevention bytes (the 03 of 00 00 03). */
export function unescapeRbsp(data) {
  const out = new Uint8Array(data.length);
  let n = 0;
  let zeros = 0;
  for (const b of data) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

/**
 * Our clock from one whole H.264 SEI NAL unit (header byte first, emulation-prevention
 * bytes still in), walking every SEI message in it; null if it carries none.
 */
export function parseClockSeiNal(nal) {
  if (!nal || nal.length < 2 || (nal[0] & 0x1f) !== 6) return null;
  const rbsp = unescapeRbsp(nal.subarray(1));
  let at = 0;
  const varint = () => {
    let v = 0;
    for (;;) {
      if (at >= rbsp.length) return -1;
      const b = rbsp[at++];
      v += b;
      if (b !== 0xff) return v;
    }
  };
  while (at < rbsp.length && rbsp[at] !== 0x80) {
    const type = varint();
    const size = varint();
    if (type < 0 || size < 0 || at + size > rbsp.length) return null;
    const payload = rbsp.subarray(at, at + size);
    at += size;
    if (type === USER_DATA_UNREGISTERED && size >= PAYLOAD_LEN && isClockUuid(payload.subarray(0, 16))) {
      return parseClockUserData(payload.subarray(16));
    }
  }
  return null;
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// VP9 and AV1 have no SEI: `onair push` sends the same clock as an AMF0 script data
// message after each of their frames (shared/src/frame_time.rs):
//   "onFrameTime" { wallclockUs: µs since the Unix epoch, frame: counter, pts: the frame's
//   presentation time in ms on the pusher's timeline }
// mpegts.js decodes it and hands the page `{ onFrameTime: {…} }` (SCRIPTDATA_ARRIVED),
// without the tag's timestamp: hence the pts inside.

/** `{ wallclockMs, frame, ptsMs }` from mpegts.js's decoded script data, or null when it is
 *  not an onFrameTime message or a field is missing. */
export function parseFrameTime(scriptData) {
  const m = scriptData && scriptData.onFrameTime;
  if (!m || typeof m !== 'object') return null;
  const { wallclockUs, frame, pts } = m;
  if (![wallclockUs, frame, pts].every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) return null;
  return { wallclockMs: wallclockUs / 1000, frame, ptsMs: pts };
}

/**
 * Puts onFrameTime clocks on the media element's timeline. mpegts.js starts that timeline
 * at the first frame it is given (it subtracts that frame's timestamp from all others), and
 * the server starts a viewer at a keyframe from its GOP cache with that frame's clock right
 * after it: so the first clock seen is media time 0, and each later one lies its pts
 * difference later. One per connection (the engine makes a new one each time).
 */
export class FrameTimeline {
  constructor() {
    this.base = undefined;
  }

  /** Media time (ms) of the frame a clock belongs to. */
  mediaTime(clock) {
    if (this.base === undefined) this.base = clock.ptsMs;
    return clock.ptsMs - this.base;
  }
}
