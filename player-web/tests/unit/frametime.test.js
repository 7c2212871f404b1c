// The VP9/AV1 clock (onFrameTime script data): byte vectors laid out as
// shared/src/frame_time.rs writes them, decoded by mpegts.js's own AMF parser (what the
// page gets from SCRIPTDATA_ARRIVED), then read by sei.js.
import { describe, expect, it } from 'vitest';
import AMF from 'mpegts.js/src/demux/amf-parser.js';
import { FrameTimeline, parseFrameTime } from '../../src/sei.js';

const ASCII = (s) => Array.from(s, (c) => c.charCodeAt(0));
const str = (s) => [0, s.length, ...ASCII(s)];
function num(v) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, false);
  return [0, ...b];
}

/** The body `onair push` sends: AMF0 string "onFrameTime", object {wallclockUs, frame, pts}. */
function body(us, frame, pts) {
  return Uint8Array.from([
    2,
    ...str('onFrameTime'),
    3,
    ...str('wallclockUs'),
    ...num(us),
    ...str('frame'),
    ...num(frame),
    ...str('pts'),
    ...num(pts),
    0,
    0,
    9,
  ]);
}

const decode = (bytes) => AMF.parseScriptData(bytes.buffer, 0, bytes.length);

describe('onFrameTime', () => {
  it('decodes through mpegts.js to the clock, to the microsecond', () => {
    const b = body(1764614400123456, 42, 1400);
    // The Rust side's length (frame_time::ENCODED_LEN).
    expect(b.length).toBe(70);
    expect(parseFrameTime(decode(b))).toEqual({ wallclockMs: 1764614400123.456, frame: 42, ptsMs: 1400 });
  });

  it('ignores onMetaData and malformed clocks', () => {
    const meta = Uint8Array.from([2, ...str('onMetaData'), 3, ...str('width'), ...num(640), 0, 0, 9]);
    expect(parseFrameTime(decode(meta))).toBeNull();
    expect(parseFrameTime({ onFrameTime: { wallclockUs: 1, frame: 2 } })).toBeNull();
    expect(parseFrameTime({ onFrameTime: { wallclockUs: 'x', frame: 2, pts: 3 } })).toBeNull();
    expect(parseFrameTime({})).toBeNull();
    expect(parseFrameTime(null)).toBeNull();
  });

  it('puts clocks on the media timeline, the first one at 0', () => {
    const t = new FrameTimeline();
    const at = (pts) => t.mediaTime({ ptsMs: pts, wallclockMs: 0, frame: 0 });
    expect(at(5033)).toBe(0);
    expect(at(5066)).toBe(33);
    expect(at(6033)).toBe(1000);
  });
});
