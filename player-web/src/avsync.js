// The A/V offset a viewer gets, from the onair test pattern: each second the pattern's audio
// starts a beep at the same capture instant as the video frame whose counter (in the SEI
// clock) is a multiple of the frame rate (pusher/src/pipeline.rs stamps both tracks from one
// clock; pusher/src/source/tone.rs starts the beep on sample 0 of each second). The page
// reports when each frame was shown and when each beep was heard; this pairs them.
// Pure: times are parameters, never read here.

import { median } from './latency.js';

/** The stream's whole frame rate from the frame counters and capture clocks the map holds,
 *  or undefined when it is not (near) a whole number or there are too few frames. */
export function wholeFps(clocks) {
  const steps = [];
  for (let i = 1; i < clocks.size; i++) {
    const df = clocks.frame[i] - clocks.frame[i - 1];
    if (clocks.frame[i - 1] < 0 || df <= 0 || df > 4) continue;
    steps.push((clocks.wall[i] - clocks.wall[i - 1]) / df);
  }
  if (steps.length < 10) return undefined;
  const fps = 1000 / median(steps);
  const n = Math.round(fps);
  return n >= 1 && Math.abs(fps - n) < 0.05 * n ? n : undefined;
}

export class AvSync {
  /** `keep`: how many beeps the median covers. */
  constructor({ keep = 10, maxOffsetMs = 450 } = {}) {
    this.keep = keep;
    this.maxOffsetMs = maxOffsetMs;
    this.shown = [];
    this.pending = [];
    this.offsets = [];
    /** Every offset found since the last clear (the newest 600). */
    this.history = [];
  }

  /** A frame at `mediaMs` on the media timeline was shown at `shownMs`, playing at `rate`. */
  frameShown(mediaMs, shownMs, rate = 1) {
    this.shown.push({ mediaMs, shownMs, rate: rate > 0 ? rate : 1 });
    if (this.shown.length > 300) this.shown.shift();
  }

  /** A beep onset reached the speakers at `heardMs` (the same clock as `shownMs`). */
  beepHeard(heardMs) {
    this.pending.push(heardMs);
    if (this.pending.length > 10) this.pending.shift();
  }

  /** Pairs the beeps heard more than `settleMs` ago with their frames; returns the offsets
   *  found (ms, + = audio late). */
  update(clocks, nowMs, settleMs = 700) {
    const found = [];
    const fps = wholeFps(clocks);
    while (this.pending.length && this.pending[0] < nowMs - settleMs) {
      const heard = this.pending.shift();
      const off = fps === undefined ? undefined : this.offsetOf(heard, clocks, fps);
      if (off === undefined) continue;
      found.push(off);
      this.offsets.push(off);
      if (this.offsets.length > this.keep) this.offsets.shift();
      this.history.push(off);
      if (this.history.length > 600) this.history.shift();
    }
    return found;
  }

  offsetOf(heard, clocks, fps) {
    // The frame on screen when the beep was heard, and the whole second nearest it.
    let onScreen;
    for (const s of this.shown) if (s.shownMs <= heard) onScreen = s;
    if (!onScreen) return undefined;
    const e = clocks.entry(onScreen.mediaMs);
    if (!e || e.frame < 0) return undefined;
    const beepFrame = Math.round(e.frame / fps) * fps;
    const pts = clocks.ptsOfFrame(beepFrame);
    if (pts === undefined) return undefined;
    // When that frame was shown (from the nearest shown frame, if it itself was skipped).
    let near;
    for (const s of this.shown) if (!near || Math.abs(s.mediaMs - pts) < Math.abs(near.mediaMs - pts)) near = s;
    if (!near || Math.abs(near.mediaMs - pts) > 200) return undefined;
    const shownAt = near.shownMs + (pts - near.mediaMs) / near.rate;
    const off = heard - shownAt;
    return Math.abs(off) <= this.maxOffsetMs ? off : undefined;
  }

  /** Median of the last `keep` offsets, or undefined before the first. */
  median() {
    return median(this.offsets);
  }

  clear() {
    this.shown = [];
    this.pending = [];
    this.offsets = [];
    this.history = [];
  }
}
