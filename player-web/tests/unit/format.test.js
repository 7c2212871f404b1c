import { describe, expect, it } from 'vitest';
import {
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
    expect(mediaUrls({ app: 'live', name: 't' })).toEqual({ flv: '/live/t.flv', hls: '/live/t.m3u8' });
    expect(mediaUrls({ app: 'live', name: 't', urls: { flv: '/x.flv' } }).flv).toBe('/x.flv');
  });
});
