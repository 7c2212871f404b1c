// What the viewer sees, checked on screenshots of the picture in headless Chromium: ffmpeg
// publishes solid white, black and 50% grey (levels, which do not depend on the colour
// matrix) and SMPTE HD colour bars tagged BT.709 limited range (colours) to a real
// `onair serve`; each plays over HTTP-FLV and over HLS. Samples stay off the overlay and
// the chips (drawn on purpose), never off the banner: a veil over the picture must fail.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { assertPlays, grabVideo, launchBrowser, screenshot, startFfmpeg, startServer, waitLive, writeResult } from './lib.mjs';

const T = { timeout: 60_000 };
const SIZE = '320x180';
let srv;
let browser;
const pushers = [];
const measured = {};

// BT.709 limited range, and x264 writes it into the SPS VUI (colour description present).
const BT709_TV = ['-colorspace', 'bt709', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-color_range', 'tv'];

const STREAMS = {
  white: { lavfi: `color=c=white:s=${SIZE}` },
  black: { lavfi: `color=c=black:s=${SIZE}` },
  grey: { lavfi: `color=c=0x808080:s=${SIZE}` },
  bars: { lavfi: `smptehdbars=s=${SIZE}`, videoArgs: BT709_TV },
};

before(async () => {
  // Short HLS segments (the sources have a keyframe every 8 frames at 15 fps) so HLS starts soon.
  srv = await startServer({ toml: '[hls]\nsegment_duration_ms = 500\n' });
  for (const [name, s] of Object.entries(STREAMS)) {
    pushers.push(startFfmpeg(srv.rtmpUrl(`live/${name}`), s.lavfi, { videoArgs: s.videoArgs || [] }));
  }
  for (const name of Object.keys(STREAMS)) await waitLive(srv, 'live', name);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const p of pushers) await p.stop();
  await srv?.stop();
  writeResult('picture', measured);
});

/** Plays `name` over `proto`, waits until the picture moves, and returns the grabbed frame. */
async function playAndGrab(name, proto) {
  const page = await browser.newPage();
  const q = proto === 'hls' ? '&proto=hls' : '';
  await page.goto(srv.url(`/live?stream=live/${name}${q}`));
  await assertPlays(page, { advance: 1, within: 5000, startMs: 20_000 });
  const banner = await page.evaluate(() => getComputedStyle(document.getElementById('banner')).display);
  assert.equal(banner, 'none', 'the banner is not rendered while playing');
  const frame = await grabVideo(page, `${name}-${proto}`);
  await screenshot(page, `${name}-${proto}-page`);
  await page.close();
  assert.equal(`${frame.vw}x${frame.vh}`, SIZE);
  return frame;
}

/** A 16×9 grid over the picture, 5 % in from its edges, off the overlay and chips. */
function gridSamples(f) {
  const out = [];
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 9; j++) {
      const x = f.vw * (0.05 + (0.9 * i) / 15);
      const y = f.vh * (0.05 + (0.9 * j) / 8);
      if (!f.underUi(x, y)) out.push({ x: Math.round(x), y: Math.round(y), rgb: f.rgb(x, y) });
    }
  }
  assert.ok(out.length >= 100, `only ${out.length} samples off the overlay`);
  return out;
}

function levels(samples) {
  const all = samples.flatMap((s) => s.rgb);
  return { min: Math.min(...all), max: Math.max(...all), samples: samples.length };
}

// The top 7/12 of smptehdbars: 40 % grey sides (1/8 of the width each) and seven 75 % bars
// between them. Full-range RGB of each.
const BARS = [
  ['grey 40%', [102, 102, 102]],
  ['white 75%', [191, 191, 191]],
  ['yellow', [191, 191, 0]],
  ['cyan', [0, 191, 191]],
  ['green', [0, 191, 0]],
  ['magenta', [191, 0, 191]],
  ['red', [191, 0, 0]],
  ['blue', [0, 0, 191]],
  ['grey 40% (right)', [102, 102, 102]],
];

function barCentres(w) {
  const side = w / 8;
  const bar = (w - 2 * side) / 7;
  return [side / 2, ...Array.from({ length: 7 }, (_, i) => side + (i + 0.5) * bar), w - side / 2];
}

for (const proto of ['flv', 'hls']) {
  describe(`picture over ${proto === 'flv' ? 'HTTP-FLV' : 'HLS'}`, () => {
    test('white shows white: every sampled pixel >= 235 on every channel', T, async () => {
      const l = levels(gridSamples(await playAndGrab('white', proto)));
      measured[`white_${proto}`] = l;
      assert.ok(l.min >= 235, `white: darkest channel ${l.min}, want >= 235`);
    });

    test('black shows black: every sampled pixel <= 20', T, async () => {
      const l = levels(gridSamples(await playAndGrab('black', proto)));
      measured[`black_${proto}`] = l;
      assert.ok(l.max <= 20, `black: brightest channel ${l.max}, want <= 20`);
    });

    test('50% grey shows 128 ± 12', T, async () => {
      const l = levels(gridSamples(await playAndGrab('grey', proto)));
      measured[`grey_${proto}`] = l;
      assert.ok(l.min >= 116 && l.max <= 140, `grey: channels ${l.min}..${l.max}, want 116..140`);
    });

    test('BT.709 limited-range colour bars show their full-range RGB ± 12', T, async () => {
      const f = await playAndGrab('bars', proto);
      const xs = barCentres(f.vw);
      const got = {};
      const bad = [];
      BARS.forEach(([label, want], i) => {
        // Three rows through the bars' height (the top 7/12 of the picture), off the overlay.
        const rows = [0.12, 0.3, 0.48].map((r) => r * f.vh).filter((y) => !f.underUi(xs[i], y));
        assert.ok(rows.length > 0, `${label}: every sample is under the overlay`);
        got[label] = rows.map((y) => f.rgb(xs[i], y, 3));
        for (const rgb of got[label]) {
          if (rgb.some((v, c) => Math.abs(v - want[c]) > 12)) bad.push(`${label}: ${rgb} (want ${want})`);
        }
      });
      measured[`bars_${proto}`] = got;
      assert.deepEqual(bad, [], 'bars off by more than 12 levels');
    });
  });
}

test('the bars stream reaches viewers tagged BT.709 limited range (what the bars test relies on)', T, async () => {
  // The SPS VUI as ffprobe reads it from the server's HTTP-FLV output.
  const out = await new Promise((res, rej) => {
    execFile(
      'ffprobe',
      ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=color_space,color_range,color_primaries', '-of', 'json', srv.url('/live/bars.flv')],
      { timeout: 20_000 },
      (err, stdout) => (err ? rej(err) : res(JSON.parse(stdout))),
    );
  });
  const v = out.streams[0];
  assert.deepEqual(
    { space: v.color_space, range: v.color_range, primaries: v.color_primaries },
    { space: 'bt709', range: 'tv', primaries: 'bt709' },
  );
});
