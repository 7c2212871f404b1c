import { describe, expect, it } from 'vitest';
import {
  codecName,
  playbackProblem,
  formatBitrate,
  formatCodecs,
  formatResolution,
  mediaUrls,
  parsePlayerQuery,
  playerHref,
} from '../../src/format.js';

describe('format', () => {
  it('bit rates', () => {
    expect(formatBitrate(0)).toBe('–');
    expect(formatBitrate(800_000)).toBe('800 kbit/s');
    expect(formatBitrate(2_534_000)).toBe('2.5 Mbit/s');
    expect(formatBitrate(12_000_000)).toBe('12 Mbit/s');
  });

  it('codecs from an /api/streams entry', () => {
    const s = {
      video: { codec: 'h264', profile: 'High', level: 3.1, width: 1280, height: 720 },
      audio: { codec: 'aac', sample_rate: 48000, channels: 2 },
    };
    expect(formatCodecs(s)).toBe('H.264 High 3.1 · AAC 48 kHz stereo');
    expect(formatCodecs({ audio: { codec: 'aac', sample_rate: 44100, channels: 1 } })).toBe('AAC 44.1 kHz mono');
    expect(formatCodecs({})).toBe('–');
    expect(formatResolution(1280, 720)).toBe('1280×720');
    expect(formatResolution(null, 720)).toBe('–');
  });

  it('stable player URLs round-trip', () => {
    expect(playerHref('live', 't')).toBe('/live?stream=live/t');
    expect(playerHref('live', 't', 'hls')).toBe('/live?stream=live/t&proto=hls');
    expect(parsePlayerQuery('?stream=live/t')).toEqual({ app: 'live', name: 't', proto: 'flv' });
    expect(parsePlayerQuery('?stream=live%2Fcam-1.hd~x&proto=hls')).toEqual({ app: 'live', name: 'cam-1.hd~x', proto: 'hls' });
    expect(parsePlayerQuery('?stream=../etc')).toBeNull();
    expect(parsePlayerQuery('?stream=a/b/c')).toBeNull();
    expect(parsePlayerQuery('')).toBeNull();
  });

  it('media URLs', () => {
    expect(mediaUrls({ app: 'live', name: 't' })).toEqual({ flv: '/live/t.flv', hls: '/live/t.m3u8', webrtc: '/live/t/whep' });
    expect(mediaUrls({ app: 'live', name: 't', urls: { flv: '/x.flv' } }).flv).toBe('/x.flv');
  });

  it('names every codec onair carries', () => {
    expect(['h264', 'hevc', 'av1', 'vp9', 'aac', 'mp3', 'opus', 'flac'].map(codecName)).toEqual([
      'H.264', 'HEVC', 'AV1', 'VP9', 'AAC', 'MP3', 'Opus', 'FLAC',
    ]);
    expect(formatCodecs({ video: { codec: 'av1', profile: 'Main', level: 2 }, audio: { codec: 'opus', sample_rate: 48000, channels: 2 } }))
      .toBe('AV1 Main 2 · Opus 48 kHz stereo');
  });

  it('says in words what the browser cannot play', () => {
    const av1 = { video: { codec: 'av1', codec_string: 'av01.0.04M.08' }, audio: { codec: 'opus', codec_string: 'opus' },
      hls: { available: false, reason: 'HLS here uses MPEG-TS segments, which cannot carry av1 or opus' } };
    const asked = [];
    const all = (t) => { asked.push(t); return true; };
    expect(playbackProblem(av1, 'flv', all)).toBeNull();
    expect(asked).toEqual(['video/mp4; codecs="av01.0.04M.08"', 'audio/mp4; codecs="opus"']);
    const noHevc = (t) => !t.includes('hvc1');
    const hevc = { video: { codec: 'hevc', codec_string: 'hvc1.1.6.L60.90' }, audio: { codec: 'aac', codec_string: 'mp4a.40.2' } };
    expect(playbackProblem(hevc, 'flv', noHevc)).toBe(
      'This browser cannot decode HEVC (hvc1.1.6.L60.90). Try another browser, or a player such as ffplay or VLC over RTMP.');
    expect(playbackProblem({ video: { codec: 'vp9', codec_string: 'vp09.00.11.08' } }, 'flv', all))
      .toMatch(/cannot read VP9 from HTTP-FLV/);
    expect(playbackProblem(av1, 'hls', all)).toMatch(/MPEG-TS segments, which cannot carry av1/);
    expect(playbackProblem(hevc, 'hls', all)).toBeNull();
    expect(playbackProblem(null, 'flv', all)).toBeNull();
  });
});
