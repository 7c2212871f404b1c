import { describe, expect, it } from 'vitest';
import { AvSync, wholeFps } from '../../src/avsync.js';
import { ClockMap } from '../../src/latency.js';

/** 30 fps frames from counter `first`: media time 40 ms + 33.3·k, captured 1000 ms earlier
 *  than the media clock says, shown `videoDelay` ms after their media time. */
function stream(first, count, { fps = 30, skip = [] } = {}) {
  const clocks = new ClockMap();
  const av = new AvSync();
  for (let k = 0; k < count; k++) {
    const frame = first + k;
    const media = 40 + (k * 1000) / fps;
    clocks.add(media, 5_000_000 + (frame * 1000) / fps, frame);
    if (!skip.includes(frame)) av.frameShown(media, media + 2000);
  }
  // Frame `first + k` is shown at 2040 + k·1000/fps.
  return { clocks, av, shownOf: (frame) => 2040 + ((frame - first) * 1000) / fps };
}

describe('wholeFps', () => {
  it('reads the frame rate from counters and capture clocks', () => {
    expect(wholeFps(stream(7, 60).clocks)).toBe(30);
    expect(wholeFps(stream(7, 60, { fps: 25 }).clocks)).toBe(25);
  });
  it('is undefined without counters or with too few frames', () => {
    const m = new ClockMap();
    for (let i = 0; i < 30; i++) m.add(i * 33, i * 33);
    expect(wholeFps(m)).toBeUndefined();
    expect(wholeFps(stream(0, 5).clocks)).toBeUndefined();
  });
});

describe('AvSync', () => {
  it('pairs a beep with the frame of its second: + when audio is late', () => {
    const { clocks, av, shownOf } = stream(17, 90); // frames 17..106: seconds at 30, 60, 90
    av.beepHeard(shownOf(60) + 40);
    av.beepHeard(shownOf(90) - 25);
    expect(av.update(clocks, 1e9)).toEqual([40, -25].map((x) => expect.closeTo(x, 6)));
    expect(av.median()).toBeCloseTo(7.5, 6);
  });

  it('waits for the frames after a beep before pairing it', () => {
    const { clocks, av, shownOf } = stream(17, 90);
    av.beepHeard(shownOf(60) + 10);
    expect(av.update(clocks, shownOf(60) + 100)).toEqual([]);
    expect(av.update(clocks, shownOf(60) + 800)).toHaveLength(1);
  });

  it('uses the nearest shown frame when the beep frame itself was skipped', () => {
    const { clocks, av, shownOf } = stream(17, 90, { skip: [60, 61] });
    av.beepHeard(shownOf(60) + 30);
    const [off] = av.update(clocks, 1e9);
    expect(off).toBeCloseTo(30, 6);
  });

  it('drops beeps it cannot place', () => {
    const { clocks, av, shownOf } = stream(17, 40); // frames 17..56: frame 60 never came
    av.beepHeard(shownOf(56) + 5);
    expect(av.update(clocks, 1e9)).toEqual([]);
    expect(av.median()).toBeUndefined();
  });
});
