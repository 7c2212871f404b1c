import { describe, expect, it } from 'vitest';
import { annexBNals, clockFromAnnexB, inbound, summarize } from '../../src/rtcstats.js';
import { CLOCK_UUID } from '../../src/sei.js';

describe('summarize', () => {
  it('gives the jitter buffer delay and the loss of the interval', () => {
    const a = { timestamp: 1000, jitterBufferDelay: 10, jitterBufferEmittedCount: 100, packetsLost: 2, packetsReceived: 1000, bytesReceived: 0 };
    const b = { timestamp: 2000, jitterBufferDelay: 13, jitterBufferEmittedCount: 130, packetsLost: 3, packetsReceived: 1099, bytesReceived: 125000 };
    const s = summarize(a, b);
    expect(s.jitterBufferMs).toBeCloseTo(100);
    expect(s.lossPct).toBeCloseTo(1);
    expect(s.lost).toBe(3);
    expect(s.bps).toBe(1_000_000);
  });

  it('says nothing it cannot know', () => {
    expect(summarize(null, { packetsLost: 0 })).toEqual({ jitterBufferMs: null, lossPct: null, lost: 0, bps: null });
    expect(summarize(null, null).lost).toBe(null);
  });

  it('finds the inbound video entry in a report', () => {
    const m = new Map([
      ['a', { type: 'inbound-rtp', kind: 'audio' }],
      ['v', { type: 'inbound-rtp', kind: 'video', id: 'v' }],
    ]);
    expect(inbound(m, 'video').id).toBe('v');
    expect(inbound([], 'video')).toBe(null);
  });
});

describe('clockFromAnnexB', () => {
  it('reads the pusher clock from an SEI between other NAL units', () => {
    // 00 00 01 inside the payload is escaped (00 00 03 01), as in any real NAL unit.
    const escaped = [...CLOCK_UUID, 0, 0, 3, 0x01, 0x8b, 0x7a, 0x3c, 0x2e, 0x40, 0, 0, 0, 7];
    const sei = [0x06, 5, 28, ...escaped, 0x80];
    const frame = Uint8Array.from([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, ...sei, 0, 0, 0, 1, 0x65, 1, 2, 3]);
    expect(annexBNals(frame).map((n) => n[0])).toEqual([0x09, 0x06, 0x65]);
    const c = clockFromAnnexB(frame);
    expect(c.frame).toBe(7);
    expect(c.wallclockMs).toBe(Number(0x018b7a3c2e40n) / 1000);
    expect(clockFromAnnexB(Uint8Array.from([0, 0, 1, 0x65, 1]))).toBe(null);
  });
});
