import { describe, expect, it } from 'vitest';
import { ClockMap, FLV_EDGE, LatencyMeter, liveEdgeAction, median } from '../../src/latency.js';

describe('ClockMap', () => {
  it('finds the nearest frame within the tolerance', () => {
    const m = new ClockMap();
    for (let i = 0; i < 10; i++) m.add(i * 33.3, 1000 + i * 33.3);
    expect(m.lookup(66.6)).toBeCloseTo(1066.6);
    expect(m.lookup(70)).toBeCloseTo(1066.6);
    expect(m.lookup(95)).toBeCloseTo(1099.9);
    expect(m.lookup(400)).toBeUndefined();
    expect(m.lookup(-60)).toBeUndefined();
  });

  it('keeps presentation order when frames come in decode order', () => {
    const m = new ClockMap();
    // I P B B: pts 0, 99, 33, 66
    m.add(0, 10);
    m.add(99, 13);
    m.add(33, 11);
    m.add(66, 12);
    expect(m.pts).toEqual([0, 33, 66, 99]);
    expect(m.lookup(64)).toBe(12);
  });

  it('forgets the oldest past its capacity', () => {
    const m = new ClockMap(3);
    for (let i = 0; i < 5; i++) m.add(i * 100, i);
    expect(m.size).toBe(3);
    expect(m.lookup(0)).toBeUndefined();
    expect(m.lookup(400)).toBe(4);
  });
});

describe('median and meter', () => {
  it('median', () => {
    expect(median([])).toBeUndefined();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('summarizes only the recent window', () => {
    const m = new LatencyMeter(2000);
    m.add(900, 0);
    m.add(100, 1500);
    m.add(200, 2500);
    m.add(300, 3000);
    expect(m.median(3000)).toBe(200);
    expect(m.median(9000)).toBeUndefined();
  });
});

describe('live edge (HTTP-FLV)', () => {
  const at = (ahead, rate = 1) => liveEdgeAction({ bufferedEnd: 100, currentTime: 100 - ahead, rate });

  const { target, catchUpAbove, maxAhead, fastRate } = FLV_EDGE;

  it('keeps its thresholds in order', () => {
    expect(target).toBeLessThan(catchUpAbove);
    expect(catchUpAbove).toBeLessThan(maxAhead);
    expect(fastRate).toBeGreaterThan(1);
  });

  it('plays at normal speed near the edge', () => {
    expect(at(target - 0.1)).toEqual({ rate: 1 });
    expect(at(catchUpAbove - 0.01)).toEqual({ rate: 1 });
  });

  it('speeds up when it drifts, until back at the target', () => {
    expect(at(catchUpAbove + 0.1)).toEqual({ rate: fastRate });
    expect(at(target + 0.05, fastRate)).toEqual({ rate: fastRate });
    expect(at(target - 0.05, fastRate)).toEqual({ rate: 1 });
  });

  it('jumps when far behind (a GOP burst, a stall, a background tab)', () => {
    const a = at(maxAhead + 0.5);
    expect(a.rate).toBe(1);
    expect(a.seekTo).toBeCloseTo(100 - target);
  });

  it('does nothing before anything is buffered', () => {
    expect(liveEdgeAction({ bufferedEnd: 0, currentTime: 0, rate: 1 })).toEqual({ rate: 1 });
  });
});
