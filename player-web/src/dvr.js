// The DVR timeline: when a stream's HLS playlist has a DVR window (/api/streams says
// hls.dvr_window_ms > 0), a range input over the seekable window and a "live" button. The
// pure functions decide positions and labels; DvrBar only wires them to its own elements
// and to the <video> element. It never touches the engine beyond seeking the video.

/** Behind the live edge by at most this (seconds) counts as live... */
export const LIVE_WITHIN_S = 4;
/** ...or by this many target durations, for long segments (hls.js plays a plain live
 *  playlist 1.5 target durations behind its end). */
export const LIVE_WITHIN_TARGETS = 2.5;

/** How far behind the edge still counts as live, for a playlist of this target duration. */
export function liveWithin(targetDuration) {
  return Math.max(LIVE_WITHIN_S, LIVE_WITHIN_TARGETS * (Number(targetDuration) || 0));
}
/** Seeking into the window stops this far (seconds) from its oldest end, which the server
 *  drops first as the window slides. */
export const START_MARGIN_S = 1;
/** The range input's steps. */
export const STEPS = 1000;

/** The seekable window {start, end} of a TimeRanges-like value, or null when empty. */
export function seekWindow(seekable) {
  if (!seekable || !seekable.length) return null;
  const start = seekable.start(0);
  const end = seekable.end(seekable.length - 1);
  return end > start ? { start, end } : null;
}

/** Whether the timeline is shown: HLS, a stream with a DVR window, and a window to seek in. */
export function showsTimeline(info, proto, win) {
  return proto === 'hls' && (info?.hls?.dvr_window_ms || 0) > 0 && !!win;
}

/** Seconds behind the live end (never negative). */
export function behindLive(win, currentTime) {
  return win ? Math.max(0, win.end - currentTime) : 0;
}

export function isLive(win, currentTime, within = LIVE_WITHIN_S) {
  return behindLive(win, currentTime) <= within;
}

/** The slider position (0..STEPS) of `currentTime` in the window. */
export function toSlider(win, currentTime) {
  if (!win) return STEPS;
  const f = (currentTime - win.start) / (win.end - win.start);
  return Math.round(Math.min(1, Math.max(0, f)) * STEPS);
}

/** The media time a slider position means, kept START_MARGIN_S inside the oldest end. */
export function fromSlider(win, value) {
  const f = Math.min(STEPS, Math.max(0, Number(value) || 0)) / STEPS;
  const t = win.start + f * (win.end - win.start);
  return Math.min(win.end, Math.max(win.start + Math.min(START_MARGIN_S, (win.end - win.start) / 2), t));
}

/** "live", or how far behind it as "−M:SS" (or "−H:MM:SS"). */
export function behindLabel(win, currentTime, within = LIVE_WITHIN_S) {
  if (isLive(win, currentTime, within)) return 'live';
  const s = Math.round(behindLive(win, currentTime));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `−${h}:${String(m).padStart(2, '0')}:${ss}` : `−${m}:${ss}`;
}

/** The bar below the picture: built once, shown while `update` says the stream has one. */
export class DvrBar {
  constructor(parent, before) {
    this.el = document.createElement('div');
    this.el.id = 'dvr';
    this.el.className = 'dvr';
    this.el.hidden = true;
    this.range = document.createElement('input');
    this.range.type = 'range';
    this.range.id = 'dvr-range';
    this.range.min = '0';
    this.range.max = String(STEPS);
    this.range.value = String(STEPS);
    this.range.setAttribute('aria-label', 'position in the DVR window');
    this.label = document.createElement('span');
    this.label.id = 'dvr-behind';
    this.label.className = 'note';
    this.live = document.createElement('button');
    this.live.id = 'dvr-live';
    this.live.type = 'button';
    this.live.className = 'chip';
    this.live.textContent = 'live';
    this.live.title = 'back to the live edge';
    this.el.append(this.range, this.label, this.live);
    parent.insertBefore(this.el, before || null);
    this.video = null;
    this.engine = null;
    this.win = null;
    /** While the viewer drags, the playhead does not move the slider. */
    this.dragging = false;
    /** Behind the edge by at most this counts as live (`liveWithin`). */
    this.within = LIVE_WITHIN_S;
    this.range.addEventListener('input', () => {
      this.dragging = true;
      if (this.win) this.label.textContent = behindLabel(this.win, fromSlider(this.win, this.range.value), this.within);
    });
    this.range.addEventListener('change', () => {
      this.dragging = false;
      if (this.video && this.win) this.seek(fromSlider(this.win, this.range.value));
    });
    this.live.addEventListener('click', () => this.goLive());
  }

  seek(t) {
    this.video.currentTime = t;
    if (this.video.paused) this.video.play().catch(() => {});
  }

  /** To the live edge: where the engine would play (hls.js's live sync position), else
   *  LIVE_WITHIN_S / 2 behind the window's end. */
  goLive() {
    if (!this.video || !this.win) return;
    const edge = this.engine?.liveEdge?.();
    this.seek(Number.isFinite(edge) && edge > 0 ? edge : this.win.end - LIVE_WITHIN_S / 2);
  }

  /** Called every tick with the playback now (video and engine may be null). */
  update(video, engine, info, proto) {
    this.video = video;
    this.engine = engine;
    // The engine's playlist span where it knows it (hls.js), else what the element says.
    this.win = (video && engine?.seekWindow?.()) || (video ? seekWindow(video.seekable) : null);
    const show = !!engine && showsTimeline(info, proto, this.win);
    this.el.hidden = !show;
    if (!show) return;
    this.within = liveWithin(engine.targetDuration?.());
    const live = isLive(this.win, video.currentTime, this.within);
    this.el.dataset.live = live ? 'yes' : 'no';
    this.el.dataset.behindS = behindLive(this.win, video.currentTime).toFixed(1);
    this.el.dataset.windowS = (this.win.end - this.win.start).toFixed(1);
    this.live.setAttribute('aria-pressed', String(live));
    if (!this.dragging) {
      this.range.value = String(toSlider(this.win, video.currentTime));
      this.label.textContent = behindLabel(this.win, video.currentTime, this.within);
    }
  }
}
