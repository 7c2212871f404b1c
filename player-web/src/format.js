// Text for people: bit rates, codecs, resolutions, durations. Pure.

export function formatBitrate(bps) {
  if (!(bps > 0)) return '–';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

export function formatResolution(w, h) {
  return w > 0 && h > 0 ? `${w}×${h}` : '–';
}

const VIDEO_NAMES = { h264: 'H.264', avc: 'H.264', hevc: 'HEVC', h265: 'HEVC', av1: 'AV1' };
const AUDIO_NAMES = { aac: 'AAC', mp3: 'MP3', opus: 'Opus' };

/** "H.264 High 3.1 · AAC 48 kHz stereo" from an /api/streams entry. */
export function formatCodecs(s) {
  const parts = [];
  if (s.video) {
    const v = s.video;
    const name = VIDEO_NAMES[String(v.codec).toLowerCase()] || String(v.codec);
    parts.push([name, v.profile, v.level != null ? String(v.level) : null].filter(Boolean).join(' '));
  }
  if (s.audio) {
    const a = s.audio;
    const name = AUDIO_NAMES[String(a.codec).toLowerCase()] || String(a.codec);
    const rate = a.sample_rate ? `${+(a.sample_rate / 1000).toFixed(1)} kHz` : null;
    const ch = a.channels === 1 ? 'mono' : a.channels === 2 ? 'stereo' : a.channels ? `${a.channels} ch` : null;
    parts.push([name, rate, ch].filter(Boolean).join(' '));
  }
  return parts.length ? parts.join(' · ') : '–';
}

export function formatFps(fps) {
  return fps > 0 ? `${fps.toFixed(fps >= 10 ? 0 : 1)} fps` : '–';
}

export function formatSeconds(ms) {
  return ms == null || !Number.isFinite(ms) ? '–' : `${(ms / 1000).toFixed(2)} s`;
}

/** The stable page URL of a stream: /live?stream=APP/NAME (and &proto=hls for HLS). */
export function playerHref(app, name, proto) {
  const q = new URLSearchParams({ stream: `${app}/${name}` });
  if (proto && proto !== 'flv') q.set('proto', proto);
  return `/live?${q.toString().replace('%2F', '/')}`;
}

/** `{app, name, proto}` from a page URL's search string, or null without a valid stream. */
export function parsePlayerQuery(search) {
  const q = new URLSearchParams(search);
  const stream = q.get('stream');
  if (!stream) return null;
  // Names as the server accepts them: no leading dot, so never "." or "..".
  const m = /^([A-Za-z0-9_~-][A-Za-z0-9_.~-]*)\/([A-Za-z0-9_~-][A-Za-z0-9_.~-]*)$/.exec(stream);
  if (!m) return null;
  const proto = q.get('proto') === 'hls' ? 'hls' : 'flv';
  return { app: m[1], name: m[2], proto };
}

/** Media URLs of a stream (the API's when given, else the server's fixed forms). */
export function mediaUrls(s) {
  const base = `/${s.app}/${s.name}`;
  return {
    flv: s.urls?.flv || `${base}.flv`,
    hls: s.urls?.hls || `${base}.m3u8`,
  };
}
