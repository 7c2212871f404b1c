import { describe, expect, it } from 'vitest';
import {
  LIVE_WITHIN_S,
  STEPS,
  behindLabel,
  behindLive,
  fromSlider,
  isLive,
  liveWithin,
  seekWindow,
  showsTimeline,
  toSlider,
} from '../../src/dvr.js';

/** A TimeRanges-like value of [start, end] pairs. */
const ranges = (...r) => ({ length: r.length, start: (i) => r[i][0], end: (i) => r[i][1] });

describe('the DVR window', () => {
  it('spans the seekable ranges, or is none', () => {
    expect(seekWindow(ranges([100, 160]))).toEqual({ start: 100, end: 160 });
    expect(seekWindow(ranges([100, 120], [125, 160]))).toEqual({ start: 100, end: 160 });
    expect(seekWindow(ranges())).toBeNull();
    expect(seekWindow(ranges([5, 5]))).toBeNull();
    expect(seekWindow(null)).toBeNull();
  });

  it('is shown for HLS streams the server gives a DVR window', () => {
    const win = { start: 0, end: 60 };
    const dvr = { hls: { dvr_window_ms: 7_200_000 } };
    expect(showsTimeline(dvr, 'hls', win)).toBe(true);
    expect(showsTimeline(dvr, 'flv', win)).toBe(false);
    expect(showsTimeline(dvr, 'hls', null)).toBe(false);
    expect(showsTimeline({ hls: { dvr_window_ms: 0 } }, 'hls', win)).toBe(false);
    expect(showsTimeline(null, 'hls', win)).toBe(false);
  });

  it('maps the slider onto the window and back, keeping off the oldest end', () => {
    const win = { start: 100, end: 200 };
    expect(toSlider(win, 200)).toBe(STEPS);
    expect(toSlider(win, 150)).toBe(STEPS / 2);
    expect(toSlider(win, 50)).toBe(0);
    expect(toSlider(win, 250)).toBe(STEPS);
    expect(fromSlider(win, STEPS / 2)).toBe(150);
    expect(fromSlider(win, STEPS)).toBe(200);
    // The oldest second goes first as the window slides: seek a little inside it.
    expect(fromSlider(win, 0)).toBe(101);
    expect(fromSlider(win, 'x')).toBe(101);
    expect(fromSlider(win, -5)).toBe(101);
    // A window shorter than two margins: its middle at most.
    expect(fromSlider({ start: 0, end: 1 }, 0)).toBe(0.5);
  });

  it('says how far behind live the playhead is', () => {
    const win = { start: 0, end: 4000 };
    expect(behindLive(win, 3990)).toBe(10);
    expect(behindLive(win, 4001)).toBe(0);
    expect(isLive(win, 4000 - LIVE_WITHIN_S)).toBe(true);
    expect(isLive(win, 4000 - LIVE_WITHIN_S - 0.5)).toBe(false);
    expect(behindLabel(win, 3999)).toBe('live');
    expect(behindLabel(win, 4000 - 32)).toBe('−0:32');
    expect(behindLabel(win, 4000 - 125.4)).toBe('−2:05');
    expect(behindLabel(win, 4000 - 3725)).toBe('−1:02:05');
  });

  it('counts more as live behind a playlist of long segments', () => {
    const win = { start: 0, end: 100 };
    expect(liveWithin(undefined)).toBe(LIVE_WITHIN_S);
    expect(liveWithin(1)).toBe(LIVE_WITHIN_S);
    // 6 s segments: hls.js plays 9 s behind the end.
    expect(liveWithin(6)).toBe(15);
    expect(isLive(win, 100 - 9, liveWithin(6))).toBe(true);
    expect(behindLabel(win, 100 - 9, liveWithin(6))).toBe('live');
    expect(behindLabel(win, 100 - 9)).toBe('−0:09');
  });
});
