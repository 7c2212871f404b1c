import { describe, expect, it } from 'vitest';
import { QoeCounter, beaconBody, newSessionId, qoeIntervalMs } from '../../src/qoe.js';

describe('beacon', () => {
  it('has exactly the fields, in order, rounded, null when unknown', () => {
    const body = beaconBody({
      stream: 'live/t',
      protocol: 'flv',
      session: '0123456789abcdef',
      interval_ms: 10003.4,
      latency_ms: 412.6,
      stalls: 1,
      stall_ms: 250.2,
      dropped_frames: 3,
      av_offset_ms: undefined,
    });
    expect(body).toBe(
      '{"stream":"live/t","protocol":"flv","session":"0123456789abcdef","interval_ms":10003,' +
        '"latency_ms":413,"stalls":1,"stall_ms":250,"dropped_frames":3,"av_offset_ms":null}',
    );
  });

  it('session ids are 16 hex digits', () => {
    expect(newSessionId(() => Uint8Array.from([0, 1, 2, 0xab, 0xcd, 0xef, 0x10, 0xff]))).toBe('000102abcdef10ff');
    expect(newSessionId()).toMatch(/^[0-9a-f]{16}$/);
  });

  it('interval: ?qoe_ms= for tests, at least 1 s, else 10 s', () => {
    expect(qoeIntervalMs('?stream=a/b&qoe_ms=2000')).toBe(2000);
    expect(qoeIntervalMs('?qoe_ms=5')).toBe(10_000);
    expect(qoeIntervalMs('?qoe_ms=x')).toBe(10_000);
    expect(qoeIntervalMs('')).toBe(10_000);
  });
});

describe('QoeCounter', () => {
  it('counts stalls and their time per interval, splitting one in progress', () => {
    const c = new QoeCounter(0);
    c.stallStarted(1000);
    c.stallStarted(1100); // already stalled
    c.stallEnded(1500);
    c.stallStarted(9000);
    expect(c.take(10_000)).toMatchObject({ interval_ms: 10_000, stalls: 2, stall_ms: 1500 });
    c.stallEnded(10_700);
    expect(c.take(20_000)).toMatchObject({ interval_ms: 10_000, stalls: 0, stall_ms: 700 });
    expect(c.take(30_000)).toMatchObject({ stalls: 0, stall_ms: 0 });
  });

  it('a stall noticed late starts when the picture last moved, within the interval', () => {
    const c = new QoeCounter(10_000);
    c.stallStarted(9_500); // last moved before this interval: counts from its start
    c.stallEnded(11_000);
    expect(c.take(12_000)).toMatchObject({ stalls: 1, stall_ms: 1000 });
  });

  it('dropped frames are the change in the total, across a new video element', () => {
    const c = new QoeCounter(0);
    c.droppedTotal(5);
    expect(c.take(1).dropped_frames).toBe(5);
    c.droppedTotal(9);
    expect(c.take(2).dropped_frames).toBe(4);
    c.droppedTotal(2); // a new element starts again from 0
    expect(c.take(3).dropped_frames).toBe(2);
  });
});
