// Latency bookkeeping and the live-edge policy. Pure: times are parameters, never read here.
//
// End-to-end latency of a shown frame = the wall-clock time it is shown minus the wall-clock
// time the pusher captured it (from the SEI). The engines report (presentation time in ms on
// the media timeline, capture wall clock in ms); the page looks the shown frame up here.

/** Presentation time → capture wall clock (and the pusher's frame counter), for the last
 *  `capacity` frames. */
export class ClockMap {
  constructor(capacity = 900) {
    this.capacity = capacity;
    this.pts = [];
    this.wall = [];
    this.frame = [];
  }

  add(ptsMs, wallMs, frame = -1) {
    // Frames arrive in decode order; B-frames may come slightly out of presentation order,
    // so insert in place (from the end: nearly always the last position).
    let i = this.pts.length;
    while (i > 0 && this.pts[i - 1] > ptsMs) i--;
    if (i > 0 && this.pts[i - 1] === ptsMs) {
      this.wall[i - 1] = wallMs;
      this.frame[i - 1] = frame;
      return;
    }
    this.pts.splice(i, 0, ptsMs);
    this.wall.splice(i, 0, wallMs);
    this.frame.splice(i, 0, frame);
    if (this.pts.length > this.capacity) {
      this.pts.shift();
      this.wall.shift();
      this.frame.shift();
    }
  }

  get size() {
    return this.pts.length;
  }

  /** Capture wall clock of the frame nearest `ptsMs`, if one is within `toleranceMs`. */
  lookup(ptsMs, toleranceMs = 50) {
    const i = this.nearest(ptsMs, toleranceMs);
    return i === undefined ? undefined : this.wall[i];
  }

  /** `{pts, wall, frame}` of the frame nearest `ptsMs` within `toleranceMs`, else undefined. */
  entry(ptsMs, toleranceMs = 50) {
    const i = this.nearest(ptsMs, toleranceMs);
    return i === undefined ? undefined : { pts: this.pts[i], wall: this.wall[i], frame: this.frame[i] };
  }

  /** Presentation time of the frame whose counter is `frame`, if it is still held. */
  ptsOfFrame(frame) {
    for (let i = this.frame.length - 1; i >= 0; i--) if (this.frame[i] === frame) return this.pts[i];
    return undefined;
  }

  nearest(ptsMs, toleranceMs) {
    const p = this.pts;
    if (p.length === 0) return undefined;
    let lo = 0;
    let hi = p.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (p[mid] < ptsMs) lo = mid + 1;
      else hi = mid;
    }
    let best = lo;
    if (lo > 0 && Math.abs(p[lo - 1] - ptsMs) < Math.abs(p[lo] - ptsMs)) best = lo - 1;
    return Math.abs(p[best] - ptsMs) <= toleranceMs ? best : undefined;
  }

  clear() {
    this.pts = [];
    this.wall = [];
    this.frame = [];
  }
}

export function median(values) {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Latency samples of the last `windowMs`, summarized by their median. */
export class LatencyMeter {
  constructor(windowMs = 2000) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  add(latencyMs, nowMs) {
    this.samples.push([nowMs, latencyMs]);
    this.trim(nowMs);
  }

  trim(nowMs) {
    while (this.samples.length && this.samples[0][0] < nowMs - this.windowMs) this.samples.shift();
  }

  /** Median of the window at `nowMs`, or undefined when no sample is recent. */
  median(nowMs) {
    this.trim(nowMs);
    return median(this.samples.map((s) => s[1]));
  }

  clear() {
    this.samples = [];
  }
}

/**
 * The live-edge policy of the HTTP-FLV player. `ahead` is how many seconds of media are
 * buffered past the playhead (the latency the player adds by itself). Returns the playback
 * rate to use and, when far behind, a time to jump to.
 *
 * - ahead > maxAhead: jump to `bufferedEnd - target` (after a stall, a background tab, a
 *   burst from the GOP cache);
 * - ahead > catchUpAbove: play faster (`fastRate`) until ahead drops to `target`;
 * - otherwise normal speed. The gap between `target` and `catchUpAbove` stops flapping.
 */
export const FLV_EDGE = { target: 0.3, catchUpAbove: 0.45, maxAhead: 1.2, fastRate: 1.1 };

export function liveEdgeAction({ bufferedEnd, currentTime, rate }, cfg = FLV_EDGE) {
  if (!(bufferedEnd > 0)) return { rate: 1 };
  const ahead = bufferedEnd - currentTime;
  if (ahead > cfg.maxAhead) return { rate: 1, seekTo: bufferedEnd - cfg.target };
  if (ahead > cfg.catchUpAbove) return { rate: cfg.fastRate };
  if (rate > 1 && ahead > cfg.target) return { rate };
  return { rate: 1 };
}
