import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { patchMpegts } from '../../build-plugins/mpegts-av1-fix.js';

const require = createRequire(import.meta.url);
const bundle = readFileSync(require.resolve('mpegts.js'), 'utf8');

describe('the mpegts.js AV1 frame-header fix', () => {
  it('applies to the installed bundle: showable_frame only for frames not shown', () => {
    const fixed = patchMpegts(bundle);
    expect(fixed).toContain('r.equal_picture_interval,l||o.readBool(),u=');
  });

  it('applies to the installed bundle: ref_order_hint only for non-intra frames', () => {
    const fixed = patchMpegts(bundle);
    expect(fixed).toContain('(!_||255!==g)&&u&&r.enable_order_hint');
    expect(fixed).not.toContain('(_||255!==g)&&u&&r.enable_order_hint');
  });

  it('applies to the installed bundle: the render size is two 16-bit fields', () => {
    const fixed = patchMpegts(bundle);
    expect(fixed).toContain('d=e.readBits(16)+1,_=e.readBits(16)+1');
    expect(fixed).not.toContain('d=e.readBits(l)+1');
  });

  it('refuses a bundle it does not know', () => {
    expect(() => patchMpegts('nothing to see')).toThrow(/not there once/);
  });
});
