// mpegts.js 1.8's AV1 frame-header parser (src/demux/av1-parser.ts, run on every keyframe
// of AV1 in FLV) has three bugs against the AV1 spec (5.9.2 and 5.9.6):
// - it reads showable_frame for shown frames, where the spec reads it for frames not shown
//   (a shown frame's is implied), so every later field of a shown key frame is one bit off;
// - it reads the eight ref_order_hint[] fields when the frame IS intra (`FrameIsIntra ||
//   refresh_frame_flags != allFrames`), where the spec says `!FrameIsIntra || ...`. A shown
//   key frame of a sequence with order hints (rav1e's, so `onair push --video-codec av1`)
//   is then read 8 × order_hint_bits too far on;
// - it reads render_width_minus_1 / render_height_minus_1 as a bit count, then that many
//   bits, instead of as two 16-bit fields.
// Together, whenever the misplaced reads lands on a 1 for render_and_frame_size_different,
// it asks for up to 65536 bits and throws ("ExpGolomb: readBits() bits exceeded max
// 32bits!"): the player stops and starts again, on some keyframes and not others.
// The build patches the shipped bundle; a bundle without the known code fails the build, so
// an mpegts.js upgrade is looked at again rather than silently left unpatched.

const FIXES = [
  {
    what: 'showable_frame only for frames not shown',
    from: 'r.equal_picture_interval,l&&o.readBool(),u=',
    to: 'r.equal_picture_interval,l||o.readBool(),u=',
  },
  {
    what: 'ref_order_hint only for frames that are not intra',
    from: '(_||255!==g)&&u&&r.enable_order_hint',
    to: '(!_||255!==g)&&u&&r.enable_order_hint',
  },
  {
    what: 'render size as two 16-bit fields',
    from: 'var l=e.readBits(16)+1,u=e.readBits(16)+1;d=e.readBits(l)+1,_=e.readBits(u)+1',
    to: 'd=e.readBits(16)+1,_=e.readBits(16)+1',
  },
];

/** The bundle's code with both fixes; throws if either spot is not found exactly once. */
export function patchMpegts(code) {
  let out = code;
  for (const f of FIXES) {
    const at = out.indexOf(f.from);
    if (at < 0 || out.indexOf(f.from, at + 1) >= 0) {
      throw new Error(`mpegts.js AV1 fix "${f.what}": the code to patch is not there once; check the new mpegts.js`);
    }
    out = out.replace(f.from, f.to);
  }
  return out;
}

export default function mpegtsAv1Fix() {
  return {
    name: 'onair-mpegts-av1-fix',
    enforce: 'pre',
    transform(code, id) {
      // Only the file itself: the CommonJS plugin's proxy ids (`...?commonjs-es-import`) are not it.
      if (!/node_modules[\\/]mpegts\.js[\\/]dist[\\/]mpegts\.js$/.test(id)) return null;
      return { code: patchMpegts(code), map: null };
    },
  };
}
