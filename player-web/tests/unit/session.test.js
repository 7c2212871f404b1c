import { describe, expect, it } from 'vitest';
import { STALL_MS, backoffMs, nextStep, oneStreamState, streamState } from '../../src/session.js';

const list = [
  { app: 'live', name: 'a', live: true },
  { app: 'live', name: 'b', live: false },
];

describe('streamState', () => {
  it('reads the API answer', () => {
    expect(streamState(list, 'live', 'a')).toBe('live');
    expect(streamState(list, 'live', 'b')).toBe('waiting');
    expect(streamState(list, 'live', 'c')).toBe('absent');
    expect(streamState(null, 'live', 'a')).toBe('unreachable');
  });
});

describe('oneStreamState', () => {
  it('reads the per-stream answer', () => {
    expect(oneStreamState(200, { live: true })).toBe('live');
    expect(oneStreamState(200, { live: false })).toBe('waiting');
    expect(oneStreamState(404, null)).toBe('absent');
    expect(oneStreamState(503, null)).toBe('unreachable');
    expect(oneStreamState(0, null)).toBe('unreachable');
  });
});

describe('nextStep', () => {
  const base = { running: false, playing: false, now: 10_000, retryAt: 0, lastProgressAt: 10_000 };

  it('starts a live stream, and waits out the retry delay after an error', () => {
    expect(nextStep({ ...base, api: 'live' })).toEqual({ action: 'start', banner: 'connecting' });
    expect(nextStep({ ...base, api: 'live', retryAt: 11_000 })).toEqual({ action: 'none', banner: 'connecting' });
  });

  it('says offline and stops when the publisher is gone; resumes when it is back', () => {
    expect(nextStep({ ...base, api: 'waiting', running: true })).toEqual({ action: 'stop', banner: 'offline' });
    expect(nextStep({ ...base, api: 'absent' })).toEqual({ action: 'none', banner: 'offline' });
    expect(nextStep({ ...base, api: 'live' }).action).toBe('start');
  });

  it('shows nothing over a playing stream', () => {
    expect(nextStep({ ...base, api: 'live', running: true, playing: true })).toEqual({ action: 'none', banner: null });
  });

  it('restarts a stalled engine', () => {
    const f = { ...base, api: 'live', running: true, lastProgressAt: base.now - STALL_MS - 1 };
    expect(nextStep(f).action).toBe('restart');
  });

  it('keeps playing through an API hiccup', () => {
    expect(nextStep({ ...base, api: 'unreachable', running: true, playing: true })).toEqual({ action: 'none', banner: null });
    expect(nextStep({ ...base, api: 'unreachable' }).banner).toBe('unreachable');
  });

  it('backs off from 0.5 s to 5 s', () => {
    expect([1, 2, 3, 4, 5, 9].map(backoffMs)).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
  });
});
