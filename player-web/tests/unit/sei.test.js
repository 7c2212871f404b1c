// Byte vectors built from the layout documented in pusher/src/mux/sei.rs (and README "SEI").
import { describe, expect, it } from 'vitest';
import { CLOCK_UUID, isClockUuid, parseClockSeiNal, parseClockUserData, unescapeRbsp } from '../../src/sei.js';

const ASCII = (s) => Array.from(s, (c) => c.charCodeAt(0));

/** The NAL as the pusher builds it: 06, type 05, size 1c, UUID, µs (8, BE), frame (4, BE),
 *  80, with emulation-prevention bytes inserted. */
function buildNal(us, frame) {
  const rbsp = [5, 28, ...ASCII('onair-sei-clock!')];
  for (let i = 7; i >= 0; i--) rbsp.push(Number((BigInt(us) >> BigInt(8 * i)) & 0xffn));
  rbsp.push((frame >>> 24) & 0xff, (frame >>> 16) & 0xff, (frame >>> 8) & 0xff, frame & 0xff, 0x80);
  const nal = [6];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      nal.push(3);
      zeros = 0;
    }
    nal.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(nal);
}

describe('clock SEI', () => {
  it('reads the documented layout byte for byte', () => {
    const nal = Uint8Array.from([
      6, 5, 28, ...ASCII('onair-sei-clock!'),
      1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0x80,
    ]);
    const c = parseClockSeiNal(nal);
    expect(c.frame).toBe(0x0a0b0c0d);
    expect(c.wallclockMs).toBe(Number(0x0102030405060708n) / 1000);
  });

  it('keeps microsecond wall clocks of today exact', () => {
    const us = 1_795_000_000_123_456; // late 2026
    const c = parseClockSeiNal(buildNal(us, 42));
    expect(c).toEqual({ wallclockMs: 1_795_000_000_123.456, frame: 42 });
  });

  it('removes emulation-prevention bytes before reading', () => {
    const us = 0x0000000100000000; // zeros force escapes
    const nal = buildNal(us, 0);
    expect(nal.some((_, i) => nal[i] === 0 && nal[i + 1] === 0 && nal[i + 2] === 3)).toBe(true);
    expect(parseClockSeiNal(nal)).toEqual({ wallclockMs: us / 1000, frame: 0 });
    expect(Array.from(unescapeRbsp(Uint8Array.from([0, 0, 3, 1, 0, 0, 3, 0])))).toEqual([0, 0, 1, 0, 0, 0]);
  });

  it('finds ours after another SEI message in the same NAL', () => {
    const ours = buildNal(7000, 9);
    const nal = Uint8Array.from([6, 6, 1, 0x84, ...ours.subarray(1)]);
    expect(parseClockSeiNal(nal)).toEqual({ wallclockMs: 7, frame: 9 });
  });

  it('ignores other NALs, other UUIDs and truncated input', () => {
    expect(parseClockSeiNal(Uint8Array.from([0x65, 1, 2, 3]))).toBeNull();
    expect(parseClockSeiNal(new Uint8Array())).toBeNull();
    const ours = buildNal(7000, 9);
    expect(parseClockSeiNal(ours.subarray(0, 20))).toBeNull();
    const other = Uint8Array.from(ours);
    other[5] ^= 1;
    expect(parseClockSeiNal(other)).toBeNull();
  });

  it('matches the UUID as bytes (mpegts.js) and as text (hls.js)', () => {
    expect(isClockUuid(CLOCK_UUID)).toBe(true);
    expect(isClockUuid('6f6e6169-722d-7365-692d-636c6f636b21')).toBe(true);
    expect(isClockUuid('6F6E6169722D7365692D636C6F636B21')).toBe(true);
    expect(isClockUuid('dc45e9bd-e6d9-48b7-962c-d820d923eeef')).toBe(false); // x264's
    expect(isClockUuid(new Uint8Array(16))).toBe(false);
    expect(isClockUuid(undefined)).toBe(false);
  });

  it('reads the user data that follows the UUID, at any offset of its buffer', () => {
    const buf = new Uint8Array(40);
    buf.set([0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 5], 20);
    expect(parseClockUserData(buf.subarray(20, 32))).toEqual({ wallclockMs: 1, frame: 5 });
    expect(parseClockUserData(buf.subarray(20, 30))).toBeNull();
  });
});
