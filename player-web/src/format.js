// Text for people: bit rates, codecs, resolutions, durations. Pure.

export function formatBitrate(bps) {
  if (!(bps > 0)) return '–';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

export function formatResolution(w, h) {
  return w > 0 && h > 0 ? `${w}×${h}` : '–';
}

const VIDEO_NAMES = { h264: 'H.264', avc: 'H.264', hevc: 'HEVC', h265: 'HEVC', av1: 'AV1', vp9: 'VP9' };
const AUDIO_NAMES = { aac: 'AAC', mp3: 'MP3', opus: 'Opus', flac: 'FLAC' };

/** A codec's name for people ("HEVC", "Opus") from the API's ("hevc", "opus"). */
export function codecName(codec) {
  const c = String(codec).toLowerCase();
  return VIDEO_NAMES[c] || AUDIO_NAMES[c] || String(codec);
}

/** Codecs mpegts.js 1.8 reads out of (Enhanced) FLV: it has no VP9 reader. */
const FLV_VIDEO = ['h264', 'hevc', 'av1'];
const FLV_AUDIO = ['aac', 'mp3', 'opus', 'flac'];

/**
 * Why this browser cannot play a stream over `proto`, in words, or null when it can (or
 * when the API does not say enough to tell). `isTypeSupported` is
 * `MediaSource.isTypeSupported`, asked with the RFC 6381 string from /api/streams.
 */
export function playbackProblem(s, proto, isTypeSupported) {
  if (!s) return null;
  if (proto === 'hls') {
    if (s.hls && s.hls.available === false) return s.hls.reason || 'HLS cannot carry this stream.';
    return null;
  }
  if (proto === 'webrtc') {
    const v = s.video && String(s.video.codec).toLowerCase();
    return v && v !== 'h264' && v !== 'av1' ? `onair serves H.264 and AV1 video over WebRTC; this stream is ${codecName(v)}. Try HTTP-FLV.` : null;
  }
  const problems = [];
  for (const [kind, known, mime] of [
    ['video', FLV_VIDEO, 'video/mp4'],
    ['audio', FLV_AUDIO, 'audio/mp4'],
  ]) {
    const t = s[kind];
    if (!t) continue;
    const codec = String(t.codec).toLowerCase();
    if (!known.includes(codec)) {
      problems.push(`the browser player cannot read ${codecName(codec)} from HTTP-FLV`);
      continue;
    }
    // mpegts.js hands MP3 over as audio/mpeg, which every MSE browser takes.
    if (codec === 'mp3' || !t.codec_string || typeof isTypeSupported !== 'function') continue;
    if (!isTypeSupported(`${mime}; codecs="${t.codec_string}"`)) {
      problems.push(`this browser cannot decode ${codecName(codec)} (${t.codec_string})`);
    }
  }
  if (!problems.length) return null;
  const text = problems.join('; ');
  return `${text[0].toUpperCase()}${text.slice(1)}. Try another browser, or a player such as ffplay or VLC over RTMP.`;
}

/** "H.264 High 3.1 · AAC 48 kHz stereo" from an /api/streams entry. */
export function formatCodecs(s) {
  const parts = [];
  if (s.video) {
    const v = s.video;
    const name = codecName(v.codec);
    parts.push([name, v.profile, v.level != null ? String(v.level) : null].filter(Boolean).join(' '));
  }
  if (s.audio) {
    const a = s.audio;
    const name = codecName(a.codec);
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

/** `{app, name, proto}` from a page URL's search string, or null without a valid stream.
 *  With HLS, `&variant=ts|fmp4|ll` (passed on to the playlist URL) adds `variant`. */
export function parsePlayerQuery(search) {
  const q = new URLSearchParams(search);
  const stream = q.get('stream');
  if (!stream) return null;
  // Names as the server accepts them: no leading dot, so never "." or "..".
  const m = /^([A-Za-z0-9_~-][A-Za-z0-9_.~-]*)\/([A-Za-z0-9_~-][A-Za-z0-9_.~-]*)$/.exec(stream);
  if (!m) return null;
  const proto = ['hls', 'webrtc'].includes(q.get('proto')) ? q.get('proto') : 'flv';
  const variant = q.get('variant');
  if (proto === 'hls' && ['ts', 'fmp4', 'll'].includes(variant)) return { app: m[1], name: m[2], proto, variant };
  return { app: m[1], name: m[2], proto };
}

/** Media URLs of a stream (the API's when given, else the server's fixed forms). */
export function mediaUrls(s) {
  const base = `/${s.app}/${s.name}`;
  return {
    flv: s.urls?.flv || `${base}.flv`,
    hls: s.urls?.hls || `${base}.m3u8`,
    webrtc: `${base}/whep`,
  };
}
