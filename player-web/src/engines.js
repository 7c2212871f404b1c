// The two playback engines behind one small interface: HTTP-FLV through mpegts.js (lowest
// latency) and HLS through hls.js (or the browser's own HLS, as on iOS Safari). Each library
// is loaded only when its protocol is chosen. An engine reports the pusher's clock of each
// frame (SEI for H.264, the onFrameTime script data for VP9/AV1 over HTTP-FLV), its errors
// and its received bit rate; the page decides everything else.

import { FrameTimeline, isClockUuid, parseClockUserData, parseFrameTime } from './sei.js';

/**
 * @typedef {object} Hooks
 * @property {(ptsMs: number, wallclockMs: number, frame: number) => void} onClock  a frame's presentation
 *   time on the media timeline and its capture wall clock
 * @property {(message: string) => void} onError  fatal: the engine stopped
 */

/**
 * @returns {Promise<{proto: string, bitrateBps: () => number, destroy: () => void}>}
 */
export async function createEngine(proto, video, url, hooks) {
  if (proto === 'webrtc') return (await import('./webrtc.js')).createWebRtc(video, url, hooks);
  return proto === 'hls' ? createHls(video, url, hooks) : createFlv(video, url, hooks);
}

async function createFlv(video, url, hooks) {
  const { default: mpegts } = await import('mpegts.js');
  if (!mpegts.getFeatureList().mseLivePlayback) {
    // iPhones before iOS 17.1 have no Media Source Extensions: the page falls back to HLS.
    const e = new Error('this browser cannot play HTTP-FLV (no Media Source Extensions)');
    e.unsupported = true;
    throw e;
  }
  mpegts.LoggingControl.enableVerbose = false;
  mpegts.LoggingControl.enableDebug = false;
  mpegts.LoggingControl.enableInfo = false;
  const player = mpegts.createPlayer(
    { type: 'flv', isLive: true, url },
    {
      enableWorker: false,
      // No stash: hand every byte to the demuxer as it comes (lowest latency).
      enableStashBuffer: false,
      lazyLoad: false,
      autoCleanupSourceBuffer: true,
      autoCleanupMaxBackwardDuration: 30,
      autoCleanupMinBackwardDuration: 10,
      // The page keeps the live edge itself (latency.js), the same way for every stream.
      liveBufferLatencyChasing: false,
      liveSync: false,
    },
  );
  let bps = 0;
  let failed = false;
  const fail = (msg) => {
    if (failed) return;
    failed = true;
    hooks.onError(msg);
  };
  player.on(mpegts.Events.SEI_ARRIVED, (sei) => {
    if (sei.type !== 5 || !isClockUuid(sei.uuid) || sei.pts == null) return;
    const clock = parseClockUserData(sei.user_data);
    // mpegts.js gives the pts in ms, already on the media element's timeline.
    if (clock) hooks.onClock(sei.pts, clock.wallclockMs, clock.frame);
  });
  // VP9/AV1: the clock comes as script data after each frame (sei.js).
  const frameTimeline = new FrameTimeline();
  player.on(mpegts.Events.SCRIPTDATA_ARRIVED, (data) => {
    const clock = parseFrameTime(data);
    if (clock) hooks.onClock(frameTimeline.mediaTime(clock), clock.wallclockMs, clock.frame);
  });
  player.on(mpegts.Events.STATISTICS_INFO, (s) => {
    // speed: KiB/s received over the last second.
    if (s && s.speed >= 0) bps = s.speed * 1024 * 8;
  });
  player.on(mpegts.Events.ERROR, (type, detail, info) => {
    fail(`${type}: ${detail}${info && info.msg ? ` (${info.msg})` : ''}`);
  });
  // A live HTTP-FLV body ends only when the server ends the stream.
  player.on(mpegts.Events.LOADING_COMPLETE, () => fail('the stream ended'));
  player.attachMediaElement(video);
  player.load();
  play(video);
  return {
    proto: 'flv',
    bitrateBps: () => bps,
    destroy() {
      failed = true;
      try {
        player.pause();
        player.unload();
        player.detachMediaElement();
        player.destroy();
      } catch {
        // Already torn down.
      }
    },
  };
}

/** hls.js settings: stay about 1.5 segments behind the newest one, catch up by playing
 *  faster, jump when more than 4 behind. */
export const HLS_CONFIG = {
  lowLatencyMode: true,
  liveSyncDurationCount: 1.5,
  liveMaxLatencyDurationCount: 4,
  maxLiveSyncPlaybackRate: 1.2,
  backBufferLength: 10,
  enableWorker: true,
};

/** On a Low-Latency HLS playlist (parts: the server's default) hls.js plays PART-HOLD-BACK
 *  behind the edge with blocking reloads. Any liveSync* setting would override that hold
 *  back with a whole-segment count, so this one has none. */
export const LL_HLS_CONFIG = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1.2,
  backBufferLength: 10,
  enableWorker: true,
};

/** With a DVR window the viewer may play far behind the edge: no jump back to it. (The
 *  LL-HLS settings have no maximum latency, hls.js's default, and set no liveSync* that
 *  one could be checked against.) */
export const DVR_OVERRIDES = { liveMaxLatencyDurationCount: Infinity };

async function createHls(video, url, hooks) {
  const { default: Hls } = await import('hls.js');
  let failed = false;
  const fail = (msg) => {
    if (failed) return;
    failed = true;
    hooks.onError(msg);
  };
  if (!Hls.isSupported()) {
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      // The browser's own HLS (iOS Safari): plays, but exposes no SEI and no byte counts.
      video.src = url;
      video.addEventListener('error', () => fail('the browser could not play the HLS stream'), { once: true });
      play(video);
      return {
        proto: 'hls',
        bitrateBps: () => 0,
        destroy() {
          failed = true;
          video.removeAttribute('src');
          video.load();
        },
      };
    }
    throw new Error('this browser can play neither hls.js nor native HLS');
  }
  // One look at the playlist decides the settings: LL-HLS has EXT-X-PART-INF.
  let lowLatency = false;
  try {
    const r = await fetch(url, { cache: 'no-store' });
    lowLatency = r.ok && (await r.text()).includes('#EXT-X-PART-INF');
  } catch {
    // hls.js reports a playlist it cannot load.
  }
  const hls = new Hls(lowLatency ? LL_HLS_CONFIG : { ...HLS_CONFIG, ...(hooks.dvr ? DVR_OVERRIDES : {}) });
  // Which HLS the server gave: LL-HLS (parts), fMP4 or MPEG-TS, for the overlay.
  let variant = '';
  hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
    variant = hlsVariantName(data.details);
  });
  // Media bit rate: bytes of the last few segments over their duration.
  const recent = [];
  hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
    const bytes = data.frag?.stats?.total || data.payload?.byteLength || 0;
    const dur = data.frag?.duration || 0;
    if (bytes > 0 && dur > 0) {
      recent.push([bytes, dur]);
      if (recent.length > 5) recent.shift();
    }
  });
  hls.on(Hls.Events.FRAG_PARSING_USERDATA, (_e, data) => {
    for (const s of data.samples || []) {
      if (s.payloadType !== 5 || !isClockUuid(s.uuid)) continue;
      const clock = parseClockUserData(s.userDataBytes);
      // hls.js gives the pts in seconds on the media element's timeline.
      if (clock) hooks.onClock(s.pts * 1000, clock.wallclockMs, clock.frame);
    }
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (data.fatal) fail(`${data.type}: ${data.details}`);
    // hls.js recovers from these itself; logged so a stall seen in a test has its cause.
    else console.warn(`hls.js: ${data.type}: ${data.details}${data.frag ? ` (fragment ${data.frag.sn})` : ''}`);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => play(video));
  return {
    proto: 'hls',
    variant: () => variant,
    /** Where hls.js plays at the live edge (the DVR bar's "live" button). */
    liveEdge: () => hls.liveSyncPosition,
    /** EXT-X-TARGETDURATION of the playlist (seconds). */
    targetDuration: () => hls.latestLevelDetails?.targetduration,
    /** The playlist's span on the media timeline (the DVR bar's window). */
    seekWindow() {
      const d = hls.latestLevelDetails;
      return d && d.live && d.edge > d.fragmentStart ? { start: d.fragmentStart, end: d.edge } : null;
    },
    bitrateBps() {
      const bytes = recent.reduce((a, r) => a + r[0], 0);
      const dur = recent.reduce((a, r) => a + r[1], 0);
      return dur > 0 ? (bytes * 8) / dur : 0;
    },
    destroy() {
      failed = true;
      hls.destroy();
    },
  };
}

/** "LL-HLS (fMP4, 0.2 s parts)", "fMP4" or "MPEG-TS", from hls.js's level details. */
export function hlsVariantName(details) {
  if (!details) return '';
  const frag = details.fragments?.[0];
  const fmp4 = !!frag?.initSegment || /\.m4s(\?|$)/.test(frag?.url || '');
  const container = fmp4 ? 'fMP4' : 'MPEG-TS';
  if (details.partList?.length || details.partTarget) {
    return `LL-HLS (${container}, ${Number(details.partTarget || 0).toFixed(1)} s parts)`;
  }
  return container;
}

function play(video) {
  const p = video.play();
  // Autoplay may be refused until the user interacts; the page shows a play button then.
  if (p && p.catch) p.catch(() => {});
}
