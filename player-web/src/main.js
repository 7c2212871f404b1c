// The /live page: the list of live streams (from /api/streams, refreshed every 2 s) and the
// player of the stream named in the URL (/live?stream=APP/NAME[&proto=hls]), which asks
// /api/streams/APP/NAME about its own stream, so it plays where the list is not public.
// Policy lives in the pure modules (session.js, latency.js, avsync.js, qoe.js, format.js);
// this file wires them to the DOM.

import './style.css';
import { AudioTap } from './audio.js';
import { AvSync } from './avsync.js';
import { DvrBar } from './dvr.js';
import { createEngine } from './engines.js';
import { ClockMap, LatencyMeter, liveEdgeAction } from './latency.js';
import { QoeCounter, beaconBody, newSessionId, qoeIntervalMs } from './qoe.js';
import { backoffMs, nextStep, oneStreamState } from './session.js';
import {
  formatBitrate,
  formatCodecs,
  formatFps,
  formatResolution,
  mediaUrls,
  parsePlayerQuery,
  playbackProblem,
  playerHref,
} from './format.js';

const POLL_MS = 2000;
const TICK_MS = 250;
/** The playhead standing still this long while playing counts as a stall. */
const STALL_AFTER_MS = 500;

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
  variant: $('variant'),
  codecs: $('codecs'),
  banner: $('banner'),
  unmute: $('unmute'),
  play: $('play'),
  title: $('title'),
  protoFlv: $('proto-flv'),
  protoHls: $('proto-hls'),
  protoWebrtc: $('proto-webrtc'),
  rtcRow: $('rtc-row'),
  jitter: $('jitter'),
  loss: $('loss'),
  statsToggle: $('stats-toggle'),
  share: $('share'),
  streams: $('streams'),
  empty: $('empty'),
  apiError: $('api-error'),
  listPrivate: $('list-private'),
  volume: $('volume'),
  pip: $('pip'),
  fullscreen: $('fullscreen'),
};
for (const h of document.querySelectorAll('.host')) h.textContent = location.hostname;
/** The DVR timeline under the picture, shown for streams with a DVR window. */
const dvrBar = new DvrBar(ui.playerSection, document.querySelector('.share'));

/** The last /api/streams answer (null: none yet or the server did not answer). */
let streams = null;
/** The stream the URL names: {app, name, proto}, or null on the bare list. */
let current = null;
/** What /api/streams/APP/NAME last said of it: its state and its entry (null if none). */
let currentState = 'unreachable';
let currentInfo = null;
/** Whether this page has seen the stream live: before that, "waiting to start". */
let seenLive = false;

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
const session = newSessionId();
let qoe = new QoeCounter(performance.now());
/** Whether the picture moved since the last beacon: beacons speak only of playback (or of
 *  a stall in it). */
let playedSinceBeacon = false;
let lastQuality = null;

// ---- the list ----------------------------------------------------------------------------

/** `{status, body}` of a GET answering JSON; status 0 when the server does not answer. */
async function getJson(url) {
  try {
    const r = await fetch(url, { cache: 'no-store' });
    return { status: r.status, body: r.ok ? await r.json() : null };
  } catch {
    return { status: 0, body: null };
  }
}

async function poll() {
  const cur = current;
  const [list, one] = await Promise.all([
    getJson('/api/streams'),
    cur ? getJson(`/api/streams/${encodeURIComponent(cur.app)}/${encodeURIComponent(cur.name)}`) : null,
  ]);
  streams = list.status === 200 && Array.isArray(list.body) ? list.body : null;
  // 404: the server keeps its list to itself ([api] public_list = false).
  ui.listPrivate.hidden = list.status !== 404;
  ui.apiError.hidden = list.status === 200 || list.status === 404;
  if (!ui.apiError.hidden) {
    ui.apiError.textContent = list.status
      ? `/api/streams answered ${list.status}; retrying…`
      : 'The server does not answer; retrying…';
  }
  if (one && cur === current) {
    currentState = oneStreamState(one.status, one.body);
    currentInfo = one.body;
    if (currentState === 'live') seenLive = true;
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
  const same =
    q && current && q.app === current.app && q.name === current.name && q.proto === current.proto && q.variant === current.variant;
  if (same) return;
  stopEngine();
  failures = 0;
  retryAt = 0;
  current = q;
  currentState = 'unreachable';
  currentInfo = null;
  seenLive = false;
  qoe = new QoeCounter(performance.now());
  playedSinceBeacon = false;
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
  ui.protoWebrtc.href = playerHref(q.app, q.name, 'webrtc');
  ui.protoWebrtc.classList.toggle('on', q.proto === 'webrtc');
  ui.share.value = new URL(playerHref(q.app, q.name, q.proto), location.href).href;
  renderList();
  setBanner('connecting');
  poll();
}

for (const a of [ui.protoFlv, ui.protoHls, ui.protoWebrtc]) {
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
/** Sound on (from a click or a key: the browser lets a page sound after one). */
function soundOn() {
  wantSound = true;
  // Created in the viewer's gesture, so the browser lets it run.
  tap.start();
  if (video) {
    video.muted = false;
    tap.attach(video);
  }
  ui.unmute.hidden = true;
}

function toggleMute() {
  if (!video || video.muted) {
    soundOn();
  } else {
    wantSound = false;
    video.muted = true;
    // Nothing heard, nothing measured: no stale A/V figure on the overlay or in beacons.
    av.clear();
  }
}

function togglePlay() {
  if (!video) return;
  if (video.paused) video.play().catch(() => {});
  else video.pause();
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  // The picture and its control bar, so the buttons stay in reach.
  else ui.playerSection.requestFullscreen?.().catch((e) => console.warn(`onair: no fullscreen: ${e.message}`));
}

function togglePip() {
  if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
  else video?.requestPictureInPicture?.().catch((e) => console.warn(`onair: no picture-in-picture: ${e.message}`));
}

ui.unmute.addEventListener('click', soundOn);
ui.play.addEventListener('click', () => video?.play().catch(() => {}));
ui.volume.addEventListener('input', () => {
  const vol = Number(ui.volume.value);
  if (vol > 0 && (!video || video.muted)) soundOn();
  if (video) video.volume = vol;
});
ui.fullscreen.addEventListener('click', toggleFullscreen);
ui.pip.addEventListener('click', togglePip);
ui.pip.hidden = !document.pictureInPictureEnabled;
document.addEventListener('fullscreenchange', () => {
  ui.fullscreen.setAttribute('aria-pressed', String(!!document.fullscreenElement));
});
// Space: play/pause, m: mute, f: fullscreen; not while typing, and not on a focused button
// or slider, where the browser's own keys apply.
document.addEventListener('keydown', (e) => {
  if (!current || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLButtonElement) return;
  if (e.key === ' ') togglePlay();
  else if (e.key === 'm' || e.key === 'M') toggleMute();
  else if (e.key === 'f' || e.key === 'F') toggleFullscreen();
  else return;
  e.preventDefault();
});

// ---- playback session --------------------------------------------------------------------

/** Decides, from the last API answer and the playhead, whether to start, stop or restart. */
function step() {
  if (!current) return;
  const now = performance.now();
  const d = nextStep({
    api: currentState,
    running: !!engine || starting,
    playing: now - lastMovedAt < 1500,
    now,
    retryAt,
    lastProgressAt,
  });
  ui.codecs.textContent = currentInfo ? formatCodecs(currentInfo) : '–';
  // A codec this browser (or the player's demuxer) cannot handle: say so in words rather
  // than show a black picture.
  const problem =
    currentState === 'live' && window.MediaSource
      ? playbackProblem(currentInfo, current.proto, (t) => MediaSource.isTypeSupported(t))
      : null;
  if (problem) {
    if (engine || starting) stopEngine();
    setBanner('unsupported', problem);
    return;
  }
  if (d.action === 'stop') stopEngine();
  if (d.action === 'restart') {
    console.warn('onair: playback stalled, starting again');
    stopEngine();
  }
  if (d.action === 'start' || d.action === 'restart') startEngine();
  // Not live, and never live since the page opened: it has not started yet.
  setBanner(d.banner === 'offline' && !seenLive ? 'waiting' : d.banner);
}

function newVideo() {
  removeVideo();
  const v = document.createElement('video');
  v.muted = !wantSound;
  v.volume = Number(ui.volume.value);
  v.autoplay = true;
  v.playsInline = true;
  v.setAttribute('playsinline', '');
  ui.stage.prepend(v);
  video = v;
  // A WebRTC element gets its stream later: it is attached once the engine has it.
  if (wantSound && current?.proto !== 'webrtc') tap.attach(v);
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
  let url = mediaUrls(currentInfo || cur)[cur.proto];
  // The server's HLS variant asked for in the page URL (MPEG-TS, fMP4 or LL-HLS).
  if (cur.proto === 'hls' && cur.variant) url += `${url.includes('?') ? '&' : '?'}variant=${cur.variant}`;
  const v = newVideo();
  try {
    const e = await createEngine(cur.proto, v, url, {
      onClock: (pts, wall, frame) => {
        if (gen === generation) clocks.add(pts, wall, frame);
      },
      onError: (msg) => {
        if (gen === generation) engineFailed(msg);
      },
      dvr: (currentInfo?.hls?.dvr_window_ms || 0) > 0,
    });
    if (gen !== generation) {
      e.destroy();
      return;
    }
    engine = e;
    if (wantSound && cur.proto === 'webrtc') tap.attach(v);
    ui.via.textContent = { hls: 'HLS', webrtc: 'WebRTC (WHEP)' }[cur.proto] || 'HTTP-FLV';
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

function setBanner(state, text) {
  const b = ui.banner;
  if (b.dataset.state === (state || '') && (state !== 'unsupported' || b.textContent === text)) return;
  b.dataset.state = state || '';
  b.hidden = !state;
  renderOverlay(performance.now());
  if (state === 'offline') {
    b.innerHTML = '<div><strong>● Offline.</strong> This stream is not live right now.<br>' +
      'It resumes here by itself when the publisher comes back.</div>';
  } else if (state === 'waiting') {
    b.innerHTML = '<div><strong class="pulse">●</strong> Waiting for the stream to start.<br>' +
      'It plays here by itself when it goes live.</div>';
  } else if (state === 'unsupported') {
    b.textContent = text;
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
    // WebRTC frames are keyed by their RTP timestamp (90 kHz), the others by media time.
    const key = engine?.proto === 'webrtc' && meta.rtpTimestamp != null ? meta.rtpTimestamp / 90 : meta.mediaTime * 1000;
    const wall = clocks.lookup(key);
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
        playedSinceBeacon = true;
        qoe.stallEnded(now);
      }
      lastCt = v.currentTime;
      lastProgressAt = now;
    }
    // Paused by the viewer (or waiting for a click to play) is not a stall.
    if (v.paused) lastProgressAt = now;
    // A stall: playing, but the picture has stood still for STALL_AFTER_MS (since it last moved).
    else if (playingSince && now - lastMovedAt >= STALL_AFTER_MS) qoe.stallStarted(lastMovedAt);
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
  dvrBar.update(video, engine, currentInfo, current?.proto);
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
  const rtc = engine.rtcStats ? engine.rtcStats() : null;
  ui.rtcRow.hidden = !rtc;
  if (rtc) {
    ui.jitter.textContent = rtc.jitterBufferMs == null ? '–' : `${Math.round(rtc.jitterBufferMs)} ms`;
    ui.jitter.dataset.jitterBufferMs = rtc.jitterBufferMs == null ? '' : String(Math.round(rtc.jitterBufferMs));
    ui.loss.textContent = rtc.lossPct == null ? '–' : `${rtc.lossPct.toFixed(1)} % (${rtc.lost} lost)`;
    ui.loss.dataset.lost = rtc.lost == null ? '' : String(rtc.lost);
  }
  ui.variant.textContent = engine.variant?.() || '';
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

// ---- viewer-side quality beacons -----------------------------------------------------------

function sendQoe() {
  const now = performance.now();
  if (video?.getVideoPlaybackQuality) qoe.droppedTotal(video.getVideoPlaybackQuality().droppedVideoFrames);
  const counts = qoe.take(now);
  const played = playedSinceBeacon;
  playedSinceBeacon = false;
  // An interval spent wholly in a stall is reported too: that is what the viewer suffered.
  if (!current || !engine || !(played || counts.stall_ms > 0)) return;
  const body = beaconBody({
    stream: `${current.app}/${current.name}`,
    protocol: engine.proto,
    session,
    ...counts,
    // What the overlay shows now, when it is end-to-end.
    latency_ms: ui.latency.dataset.latencyKind === 'e2e' ? Number(ui.latency.dataset.latencyMs) : null,
    av_offset_ms: av.median(),
  });
  // The server may not take beacons (older onair, or off): that never disturbs playback.
  fetch('/api/qoe', { method: 'POST', body, keepalive: true, headers: { 'Content-Type': 'application/json' } }).catch(() => {});
}

applyUrl();
setInterval(tick, TICK_MS);
setInterval(sendQoe, qoeIntervalMs(location.search));
pollLoop();
