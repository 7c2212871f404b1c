import { describe, expect, it } from 'vitest';
import { hlsVariantName } from '../../src/engines.js';

describe('hlsVariantName', () => {
  it('names LL-HLS by its parts, fMP4 by its init segment, else MPEG-TS', () => {
    const fmp4 = [{ url: 'http://h/live/t-seg3.m4s', initSegment: { url: 'http://h/live/t-init0.mp4' } }];
    expect(hlsVariantName({ fragments: fmp4, partList: [{}], partTarget: 0.2 })).toBe('LL-HLS (fMP4, 0.2 s parts)');
    expect(hlsVariantName({ fragments: fmp4, partList: null, partTarget: 0 })).toBe('fMP4');
    expect(hlsVariantName({ fragments: [{ url: 'http://h/live/t-3.ts' }] })).toBe('MPEG-TS');
    expect(hlsVariantName(null)).toBe('');
  });
});
