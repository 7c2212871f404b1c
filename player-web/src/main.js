// The /live page: the list of live streams (from /api/streams, refreshed every 2 s) and the
// player of the stream named in the URL (/live?stream=APP/NAME[&proto=hls]). Policy lives in
// the pure modules (session.js, latency.js, format.js); this file wires them to the DOM.

import './style.css';
import { AudioTap } from './audio.js';
import { AvSync } from './avsync.js';
import { createEngine } from './engines.js';
import { ClockMap, LatencyMeter, liveEdgeAction } from './latency.js';
import { backoffMs, nextStep, streamState } from './session.js';
import {
  formatBitrate,
  formatCodecs,
  formatFps,
  formatResolution,
  mediaUrls,
  parsePlayerQuery,
  playerHref,
} from './format.js';

const POLL_MS = 2000;
const TICK_MS = 250;

const $ = (id) => document.getElementById(id);
const ui = {
  playerSection: $('player-section'),
  stage: $('stage'),
  overlay: $('overlay'),
  latency: $('latency'),
  latencyKind: $('latency-kind'),
  bitrate: $('bitrate'),
  resolution: $('resolution'),
  fps: $('fps'),
  dropped: $('dropped'),
  avsync: $('avsync'),
  via: $('via'),
  banner: $('banner'),
  unmute: $('unmute'),
  play: $('play'),
  title: $('title'),
  protoFlv: $('proto-flv'),
  protoHls: $('proto-hls'),
  statsToggle: $('stats-toggle'),
  share: $('share'),
  streams: $('streams'),
  empty: $('empty'),
  apiError: $('api-error'),
};
for (const h of document.querySelectorAll('.host')) h.textContent = location.hostname;

/** The last /api/streams answer (null: none yet or the server did not answer). */
let streams = null;
/** The stream the URL names: {app, name, proto}, or null on the bare list. */
let current = null;

// Playback session state.
let video = null;
let engine = null;
let starting = false;
let generation = 0;
let failures = 0;
let retryAt = 0;
let lastCt = -1;
let lastProgressAt = 0;
let lastMovedAt = 0;
let playingSince = 0;
let wantSound = false;
const clocks = new ClockMap();
const meter = new LatencyMeter(2000);
const av = new AvSync();
const tap = new AudioTap();
tap.onBeep = (t) => av.beepHeard(tap.heardAt(t));
let lastQuality = null;

// ---- the list ----------------------------------------------------------------------------

async function poll() {
  try {
    const r = await fetch('/api/streams', { cache: 'no-store' });
    streams = r.ok ? await r.json() : null;
    ui.apiError.hidden = r.ok;
    if (!r.ok) ui.apiError.textContent = `/api/streams answered ${r.status}; retrying…`;
  } catch {
    streams = null;
    ui.apiError.hidden = false;
    ui.apiError.textContent = 'The server does not answer; retrying…';
  }
  renderList();
  step();
}

async function pollLoop() {
  for (;;) {
    await poll();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Cards keyed by APP/NAME, updated in place so a click is never lost to a refresh. */
const cards = new Map();

function card(key) {
  let li = cards.get(key);
  if (li) return li;
  li = document.createElement('li');
  li.dataset.stream = key;
  const a = document.createElement('a');
  a.addEventListener('click', (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute('href'));
  });
  a.innerHTML = `
    <span class="badge"></span>
    <div class="name"></div>
    <div class="facts">
      <span data-k="resolution"></span> · <span data-k="fps"></span><br>
      <span data-k="codecs"></span><br>
      <span data-k="bitrate"></span> · <span data-k="viewers"></span>
    </div>`;
  a.querySelector('.name').textContent = key;
  li.append(a);
  cards.set(key, li);
  return li;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function renderList() {
  if (!Array.isArray(streams)) return;
  const seen = new Set();
  streams.forEach((s, i) => {
    const key = `${s.app}/${s.name}`;
    seen.add(key);
    const li = card(key);
    li.classList.toggle('current', !!current && key === `${current.app}/${current.name}`);
    const a = li.firstElementChild;
    const href = playerHref(s.app, s.name, current?.proto);
    if (a.getAttribute('href') !== href) a.setAttribute('href', href);
    const badge = a.querySelector('.badge');
    badge.className = `badge ${s.live ? 'live' : 'waiting'}`;
    setText(badge, s.live ? 'LIVE' : 'WAITING');
    const v = s.video || {};
    const viewers = s.viewers?.total ?? 0;
    setText(a.querySelector('[data-k=resolution]'), formatResolution(v.width, v.height));
    setText(a.querySelector('[data-k=fps]'), formatFps(v.fps));
    setText(a.querySelector('[data-k=codecs]'), formatCodecs(s));
    setText(a.querySelector('[data-k=bitrate]'), formatBitrate(s.ingest_bitrate_bps));
    setText(a.querySelector('[data-k=viewers]'), `${viewers} viewer${viewers === 1 ? '' : 's'}`);
    if (ui.streams.children[i] !== li) ui.streams.insertBefore(li, ui.streams.children[i] || null);
  });
  for (const [key, li] of cards) {
    if (!seen.has(key)) {
      li.remove();
      cards.delete(key);
    }
  }
  ui.empty.hidden = streams.length > 0;
}

// ---- navigation --------------------------------------------------------------------------

function navigate(href) {
  history.pushState(null, '', href);
  applyUrl();
}

function applyUrl() {
  const q = parsePlayerQuery(location.search);
  const same = q && current && q.app === current.app && q.name === current.name && q.proto === current.proto;
  if (same) return;
  stopEngine();
  failures = 0;
  retryAt = 0;
  current = q;
  ui.playerSection.hidden = !q;
  if (!q) {
    document.title = 'onair · live';
    removeVideo();
    renderList();
    return;
  }
  const key = `${q.app}/${q.name}`;
  document.title = `${key} · onair`;
  ui.title.textContent = key;
  ui.protoFlv.href = playerHref(q.app, q.name, 'flv');
  ui.protoHls.href = playerHref(q.app, q.name, 'hls');
  ui.protoFlv.classList.toggle('on', q.proto === 'flv');
  ui.protoHls.classList.toggle('on', q.proto === 'hls');
  ui.share.value = new URL(playerHref(q.app, q.name, q.proto), location.href).href;
  renderList();
  setBanner('connecting');
  step();
}

for (const a of [ui.protoFlv, ui.protoHls]) {
  a.addEventListener('click', (e) => {
    e.preventDefault();
    navigate(a.getAttribute('href'));
  });
}
window.addEventListener('popstate', applyUrl);
ui.share.addEventListener('focus', () => ui.share.select());
ui.statsToggle.addEventListener('click', () => {
  const on = ui.overlay.classList.toggle('off') === false;
  ui.statsToggle.setAttribute('aria-pressed', String(on));
});
ui.unmute.addEventListener('click', () => {
  wantSound = true;
  // Created in the click, so the browser lets it sound.
  tap.start();
  if (video) {
    video.muted = false;
    tap.attach(video);
  }
  ui.unmute.hidden = true;
});
ui.play.addEventListener('click', () => video?.play().catch(() => {}));

// ---- playback session --------------------------------------------------------------------

/** Decides, from the last API answer and the playhead, whether to start, stop or restart. */
function step() {
  if (!current) return;
  const now = performance.now();
  const d = nextStep({
    api: streamState(streams, current.app, current.name),
    running: !!engine || starting,
    playing: now - lastMovedAt < 1500,
    now,
    retryAt,
    lastProgressAt,
  });
  if (d.action === 'stop') stopEngine();
  if (d.action === 'restart') {
    console.warn('onair: playback stalled, starting again');
    stopEngine();
  }
  if (d.action === 'start' || d.action === 'restart') startEngine();
  setBanner(d.banner);
}

function newVideo() {
  removeVideo();
  const v = document.createElement('video');
  v.muted = !wantSound;
  v.autoplay = true;
  v.playsInline = true;
  v.setAttribute('playsinline', '');
  ui.stage.prepend(v);
  video = v;
  if (wantSound) tap.attach(v);
  lastQuality = null;
  watchFrames(v);
  return v;
}

function removeVideo() {
  if (video) video.remove();
  video = null;
}

async function startEngine() {
  const gen = ++generation;
  starting = true;
  clocks.clear();
  meter.clear();
  av.clear();
  lastCt = -1;
  lastProgressAt = performance.now();
  playingSince = 0;
  const cur = current;
  const info = Array.isArray(streams) ? streams.find((s) => s.app === cur.app && s.name === cur.name) : null;
  const url = mediaUrls(info || cur)[cur.proto];
  const v = newVideo();
  try {
    const e = await createEngine(cur.proto, v, url, {
      onClock: (pts, wall, frame) => {
        if (gen === generation) clocks.add(pts, wall, frame);
      },
      onError: (msg) => {
        if (gen === generation) engineFailed(msg);
      },
    });
    if (gen !== generation) {
      e.destroy();
      return;
    }
    engine = e;
    ui.via.textContent = cur.proto === 'hls' ? 'HLS' : 'HTTP-FLV';
  } catch (err) {
    if (gen === generation && err?.unsupported && cur.proto === 'flv') {
      console.warn(`onair: ${err.message}; playing over HLS instead`);
      history.replaceState(null, '', playerHref(cur.app, cur.name, 'hls'));
      applyUrl();
      return;
    }
    if (gen === generation) engineFailed(err?.message || String(err));
  } finally {
    if (gen === generation) starting = false;
  }
}

function engineFailed(msg) {
  console.warn(`onair: playback stopped: ${msg}`);
  stopEngine();
  failures++;
  retryAt = performance.now() + backoffMs(failures);
  // Ask the server at once whether the stream is still there.
  poll();
}

function stopEngine() {
  generation++;
  starting = false;
  if (engine) engine.destroy();
  engine = null;
  if (video) video.playbackRate = 1;
}

function setBanner(state) {
  const b = ui.banner;
  if (b.dataset.state === (state || '')) return;
  b.dataset.state = state || '';
  b.hidden = !state;
  renderOverlay(performance.now());
  if (state === 'offline') {
    b.innerHTML = '<div><strong>● Offline.</strong> This stream is not live right now.<br>' +
      'It resumes here by itself when the publisher comes back.</div>';
  } else if (state === 'connecting') {
    b.textContent = 'connecting…';
  } else if (state === 'unreachable') {
    b.textContent = 'The server does not answer. Retrying…';
  } else {
    b.textContent = '';
  }
}

/** End-to-end latency of each shown frame: when it is shown minus when it was captured. */
function watchFrames(v) {
  if (!('requestVideoFrameCallback' in v)) return;
  const onFrame = (_now, meta) => {
    if (v !== video) return;
    const wall = clocks.lookup(meta.mediaTime * 1000);
    if (wall !== undefined) {
      const shownAt = Date.now() - (performance.now() - meta.expectedDisplayTime);
      meter.add(shownAt - wall, performance.now());
    }
    av.frameShown(meta.mediaTime * 1000, meta.expectedDisplayTime, v.playbackRate);
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
}

function bufferedEnd(v) {
  const b = v.buffered;
  return b.length ? b.end(b.length - 1) : 0;
}

let ticks = 0;
function tick() {
  ticks++;
  const now = performance.now();
  const v = video;
  if (v && engine) {
    if (v.currentTime > lastCt + 0.01) {
      if (lastCt >= 0) {
        lastMovedAt = now;
        if (!playingSince) playingSince = now;
      }
      lastCt = v.currentTime;
      lastProgressAt = now;
    }
    if (playingSince && now - playingSince > 5000) failures = 0;
    // HTTP-FLV: keep to the live edge ourselves (hls.js does it for HLS).
    if (engine.proto === 'flv' && !v.paused) {
      const a = liveEdgeAction({ bufferedEnd: bufferedEnd(v), currentTime: v.currentTime, rate: v.playbackRate });
      if (a.seekTo !== undefined) v.currentTime = a.seekTo;
      if (v.playbackRate !== a.rate) v.playbackRate = a.rate;
    }
    // Browsers without requestVideoFrameCallback: sample the playhead instead.
    if (!('requestVideoFrameCallback' in v) && !v.paused) {
      const wall = clocks.lookup(v.currentTime * 1000);
      if (wall !== undefined) meter.add(Date.now() - wall, now);
    }
    ui.play.hidden = !(v.paused && v.readyState >= 2);
    ui.unmute.hidden = !v.muted;
  } else {
    ui.play.hidden = true;
  }
  av.update(clocks, now);
  step();
  if (ticks % 2 === 0) renderOverlay(now);
}

function renderOverlay(now) {
  const v = video;
  if (!v || !engine) {
    for (const el of [ui.latency, ui.bitrate, ui.resolution, ui.fps, ui.dropped, ui.avsync]) el.textContent = '–';
    ui.avsync.dataset.avOffsetMs = '';
    ui.latencyKind.textContent = '';
    ui.latency.dataset.latencyMs = '';
    ui.latency.dataset.latencyKind = '';
    return;
  }
  const e2e = meter.median(now);
  if (e2e !== undefined) {
    ui.latency.textContent = `${(e2e / 1000).toFixed(2)} s`;
    ui.latencyKind.textContent = 'end-to-end';
    ui.latency.dataset.latencyMs = String(Math.round(e2e));
    ui.latency.dataset.latencyKind = 'e2e';
  } else if (v.buffered.length) {
    const buf = Math.max(0, bufferedEnd(v) - v.currentTime) * 1000;
    ui.latency.textContent = `${(buf / 1000).toFixed(2)} s`;
    ui.latencyKind.textContent = 'buffer latency (no pusher clock in this stream)';
    ui.latency.dataset.latencyMs = String(Math.round(buf));
    ui.latency.dataset.latencyKind = 'buffer';
  }
  ui.bitrate.textContent = formatBitrate(engine.bitrateBps());
  ui.resolution.textContent = formatResolution(v.videoWidth, v.videoHeight);
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  if (q) {
    if (lastQuality) {
      const dt = (now - lastQuality.at) / 1000;
      const frames = q.totalVideoFrames - lastQuality.total;
      if (dt > 0 && frames >= 0) ui.fps.textContent = formatFps(frames / dt);
    }
    lastQuality = { at: now, total: q.totalVideoFrames };
    ui.dropped.textContent = `${q.droppedVideoFrames} of ${q.totalVideoFrames}`;
  }
  const off = av.median();
  if (off !== undefined) {
    const ms = Math.round(off);
    ui.avsync.textContent = `${ms > 0 ? '+' : ''}${ms} ms`;
    ui.avsync.dataset.avOffsetMs = String(ms);
  } else {
    ui.avsync.textContent = v.muted || !tap.element ? '– (unmute to measure)' : '–';
    ui.avsync.dataset.avOffsetMs = '';
  }
}

// For the browser tests: what the player measures, read-only.
window.onairPlayer = {
  audioStats: () => tap.stats,
  resetAudioStats: () => tap.resetStats(),
  audioPeak: (lo, hi) => tap.peak(lo, hi),
  avOffsets: () => [...av.history],
  audioState: () => {
    const c = tap.ctx;
    if (!c) return null;
    const ts = c.getOutputTimestamp ? c.getOutputTimestamp() : {};
    return {
      state: c.state,
      rate: c.sampleRate,
      attached: !!tap.element,
      baseLatency: c.baseLatency,
      outputLatency: c.outputLatency,
      outputAheadMs: ts.performanceTime > 0 ? performance.now() - ts.performanceTime : null,
      renderAheadMs: ts.performanceTime > 0 ? (c.currentTime - ts.contextTime) * 1000 : null,
    };
  },
};

applyUrl();
setInterval(tick, TICK_MS);
pollLoop();
