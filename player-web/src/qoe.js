// What the viewer experienced, for the broadcaster: the player posts a small JSON beacon to
// POST /api/qoe every interval (10 s): the stream, the protocol, the end-to-end latency on
// screen, stalls and their duration, dropped frames and the A/V offset, counted over the
// interval since the previous beacon. Pure: the page feeds events and times, sends the body.

export const QOE_INTERVAL_MS = 10_000;

/** The beacon interval: `?qoe_ms=N` (at least 1000) for tests, else 10 s. */
export function qoeIntervalMs(search) {
  const v = Number(new URLSearchParams(search).get('qoe_ms'));
  return Number.isFinite(v) && v >= 1000 ? Math.round(v) : QOE_INTERVAL_MS;
}

/** 16 random hex digits, one per page (a viewing session), from `getRandomValues`. */
export function newSessionId(getRandomValues = (a) => crypto.getRandomValues(a)) {
  const b = getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const int = (v) => (Number.isFinite(v) ? Math.round(v) : null);

/** The beacon body, its keys in this order, counts rounded, unknowns null. */
export function beaconBody(b) {
  return JSON.stringify({
    stream: b.stream,
    protocol: b.protocol,
    session: b.session,
    interval_ms: int(b.interval_ms) ?? 0,
    latency_ms: int(b.latency_ms),
    stalls: int(b.stalls) ?? 0,
    stall_ms: int(b.stall_ms) ?? 0,
    dropped_frames: int(b.dropped_frames) ?? 0,
    av_offset_ms: int(b.av_offset_ms),
  });
}

/** Stalls (playback waiting for data after it had started) and dropped frames, per interval. */
export class QoeCounter {
  constructor(nowMs) {
    this.since = nowMs;
    this.stalls = 0;
    this.stallMs = 0;
    this.stalledAt = null;
    this.droppedBase = null;
  }

  /** Playback stopped for want of data, at `atMs` (never before this interval began). */
  stallStarted(atMs) {
    if (this.stalledAt !== null) return;
    this.stalledAt = Math.max(atMs, this.since);
    this.stalls++;
  }

  /** Playback moves again. */
  stallEnded(nowMs) {
    if (this.stalledAt === null) return;
    this.stallMs += nowMs - this.stalledAt;
    this.stalledAt = null;
  }

  /** The element's dropped-frame total (it restarts at 0 with a new element). */
  droppedTotal(total) {
    if (this.droppedBase === null || total < this.droppedBase) this.droppedBase = 0;
    this.droppedNow = total;
  }

  /** This interval's counts, and a new interval from `nowMs`. A stall in progress counts
   *  in the interval it started in, its time in each interval it covers. */
  take(nowMs) {
    let stallMs = this.stallMs;
    if (this.stalledAt !== null) {
      stallMs += nowMs - this.stalledAt;
      this.stalledAt = nowMs;
    }
    const out = {
      interval_ms: nowMs - this.since,
      stalls: this.stalls,
      stall_ms: stallMs,
      dropped_frames: this.droppedBase === null ? 0 : Math.max(0, (this.droppedNow ?? 0) - this.droppedBase),
    };
    this.since = nowMs;
    this.stalls = 0;
    this.stallMs = 0;
    if (this.droppedBase !== null) this.droppedBase = this.droppedNow ?? 0;
    return out;
  }
}
