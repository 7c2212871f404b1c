// The player in headless Chromium against a real `onair serve` with a real `onair push`
// (720p30 test pattern with the SEI clock): the list, HTTP-FLV and HLS playback, the
// latency overlay, offline and resume, a phone-sized screen. Screenshots and the measured
// latencies go to player-web/test-results/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertPlays,
  chromeState,
  launchBrowser,
  median,
  renderedButHidden,
  sampleLatency,
  screenshot,
  startPusher,
  startServer,
  videoState,
  waitFor,
  waitLive,
  writeResult,
} from './lib.mjs';

const T = { timeout: 90_000 };
let srv;
let push;
let browser;
const measured = {};

before(async () => {
  // A short grace keeps the offline test short; the behaviour is the same with the default.
  srv = await startServer({ toml: '[hub]\npublisher_grace_ms = 3000\n' });
  push = startPusher(srv.rtmpUrl('live/t'));
  await waitLive(srv, 'live', 't');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await push?.stop();
  await srv?.stop();
  writeResult('latency', measured);
});

async function banner(page) {
  return page.evaluate(() => {
    const b = document.getElementById('banner');
    return { state: b.dataset.state, hidden: b.hidden, text: b.textContent };
  });
}

/** Plays for a few seconds to settle at the live edge, then reads the overlay for 10 s. */
async function measureLatency(page, label) {
  await new Promise((r) => setTimeout(r, 3000));
  const samples = await sampleLatency(page, { forMs: 10_000, everyMs: 250 });
  assert.ok(samples.length >= 20, `${label}: the overlay showed a latency only ${samples.length} times`);
  const kinds = new Set(samples.map((s) => s.kind));
  assert.deepEqual([...kinds], ['e2e'], `${label}: latency must be end-to-end (from the SEI clock), got ${[...kinds]}`);
  for (const s of samples) assert.match(s.text, /^\d+\.\d\d s$/, `${label}: overlay text ${s.text}`);
  const med = median(samples.map((s) => s.ms));
  console.log(`  ${label}: median end-to-end latency ${med} ms over ${samples.length} readings`);
  return med;
}

/** HLS is served once the server has it; until then the HLS cases say so and skip. */
async function hlsPlaylist(query = '') {
  let last = 0;
  try {
    return await waitFor(`/live/t.m3u8${query} to answer 200`, 12_000, async () => {
      const r = await fetch(srv.url(`/live/t.m3u8${query}`));
      last = r.status;
      return r.ok ? r.text() : null;
    });
  } catch {
    const list = await srv.streams();
    const s = list.find((x) => x.app === 'live' && x.name === 't');
    // The API names an HLS URL: then HLS is meant to work and a missing playlist is a failure.
    assert.ok(!s?.urls?.hls, `the API lists ${s?.urls?.hls} but /live/t.m3u8 answered ${last}`);
    return null;
  }
}

describe('browser player', () => {
  test('the list shows the stream with its facts, refreshes by itself, and a click plays', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live'));
    const card = page.locator('li[data-stream="live/t"]');
    await card.waitFor({ timeout: 10_000 });
    await waitFor('the card to show facts', 10_000, async () => {
      const text = await card.innerText();
      return /1280×720/.test(text) && /H\.264/.test(text) && /AAC/.test(text) && /[kM]bit\/s/.test(text) && /\d+ viewers?/.test(text);
    });
    await screenshot(page, 'list');

    // A stream that starts after the page loaded appears without a reload, and leaves.
    const second = startPusher(srv.rtmpUrl('live/second'), ['--size', '320x240', '--bitrate', '300k']);
    try {
      await page.locator('li[data-stream="live/second"]').waitFor({ timeout: 20_000 });
    } finally {
      await second.stop();
    }
    await page.locator('li[data-stream="live/second"]').waitFor({ state: 'detached', timeout: 20_000 });

    await card.locator('a').click();
    await waitFor('the URL to name the stream', 5000, () => page.url().endsWith('/live?stream=live/t'));
    const s = await assertPlays(page);
    assert.equal(s.w, 1280);
    await page.close();
  });

  test('HTTP-FLV plays at the stable URL: +3 s of currentTime within 5 s, 1280 wide', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/t'));
    const s = await assertPlays(page, { advance: 3, within: 5000 });
    assert.equal(s.w, 1280, 'videoWidth');
    assert.equal(s.h, 720, 'videoHeight');
    const via = await page.locator('#via').innerText();
    assert.equal(via, 'HTTP-FLV');
    // What is hidden is not drawn: the empty banner (a dark veil) must not cover the picture.
    let c = await chromeState(page);
    assert.equal(c.bannerHidden, true, 'banner hidden while playing');
    assert.equal(c.bannerDisplay, 'none', 'the hidden banner is not rendered while playing');
    assert.notEqual(c.unmuteDisplay, 'none', 'the unmute chip shows while muted');
    assert.deepEqual(await renderedButHidden(page), [], 'elements hidden but still rendered');
    await page.locator('#unmute').click();
    c = await waitFor('the unmute chip to hide', 5000, async () => {
      const x = await chromeState(page);
      return x.unmuteHidden ? x : null;
    });
    assert.equal(c.unmuteDisplay, 'none', 'the hidden unmute chip is not rendered');
    assert.deepEqual(await renderedButHidden(page), [], 'elements hidden but still rendered');
    await screenshot(page, 'flv');
    measured.flv_median_ms = await measureLatency(page, 'HTTP-FLV');
    assert.ok(measured.flv_median_ms < 1500, `HTTP-FLV median latency ${measured.flv_median_ms} ms, want < 1500`);
    const overlay = await page.locator('#overlay').innerText();
    assert.match(overlay, /1280×720/);
    assert.match(overlay, /\d+ fps/);
    assert.match(overlay, /[kM]bit\/s/);
    assert.match(overlay, /dropped\s+\d+ of \d+/);
    await screenshot(page, 'flv-overlay');
    await page.close();
  });

  test('HTTP-FLV catches up with the live edge after falling behind', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/t'));
    await assertPlays(page, { advance: 1, within: 5000 });
    const ahead = () =>
      page.evaluate(() => {
        const v = document.querySelector('video');
        return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0;
      });
    // Fall 3 s behind, as after a stall or a background tab.
    await page.evaluate(() => document.querySelector('video').pause());
    await new Promise((r) => setTimeout(r, 3000));
    const behind = await ahead();
    assert.ok(behind > 2.5, `paused 3 s but only ${behind.toFixed(2)} s behind`);
    await page.evaluate(() => document.querySelector('video').play());
    await waitFor('the player to be back within 1 s of the live edge', 5000, async () => (await ahead()) < 1);
    await page.close();
  });

  test('LL-HLS plays by default: +3 s within 5 s, the overlay names it, latency under 4.5 s (target 1.5 s)', T, async (t) => {
    const playlist = await hlsPlaylist();
    if (playlist === null) {
      t.skip('HLS is not in the server yet (/live/t.m3u8 does not answer 200)');
      return;
    }
    assert.match(playlist, /#EXT-X-PART-INF:PART-TARGET=/, `the default playlist is LL-HLS:\n${playlist}`);
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/t&proto=hls'));
    const s = await assertPlays(page, { advance: 3, within: 5000, startMs: 30_000 });
    assert.equal(s.w, 1280, 'videoWidth');
    assert.equal(await page.locator('#via').innerText(), 'HLS');
    const variant = await page.locator('#variant').innerText();
    assert.match(variant, /^LL-HLS \(fMP4, 0\.2 s parts\)$/, `overlay variant: ${variant}`);
    await screenshot(page, 'll-hls');
    measured.ll_hls_median_ms = await measureLatency(page, 'LL-HLS');
    // The target (README) is 1.5 s; CI asserts three times that.
    assert.ok(measured.ll_hls_median_ms < 4500, `LL-HLS median latency ${measured.ll_hls_median_ms} ms, want < 4500`);
    await page.close();
  });

  test('MPEG-TS HLS (&variant=ts) plays: +3 s of currentTime within 5 s, 1280 wide, latency under 3 segments', T, async (t) => {
    const playlist = await hlsPlaylist('?variant=ts');
    if (playlist === null) {
      t.skip('HLS is not in the server yet (/live/t.m3u8 does not answer 200)');
      return;
    }
    const durations = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]));
    assert.ok(durations.length > 0, `no segments in the playlist:\n${playlist}`);
    const segment = durations.reduce((a, b) => a + b, 0) / durations.length;
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/t&proto=hls&variant=ts'));
    const s = await assertPlays(page, { advance: 3, within: 5000, startMs: 30_000 });
    assert.equal(s.w, 1280, 'videoWidth');
    assert.equal(await page.locator('#via').innerText(), 'HLS');
    assert.equal(await page.locator('#variant').innerText(), 'MPEG-TS');
    await screenshot(page, 'hls');
    measured.hls_median_ms = await measureLatency(page, 'HLS');
    measured.hls_segment_s = segment;
    assert.ok(
      measured.hls_median_ms < 3 * segment * 1000,
      `HLS median latency ${measured.hls_median_ms} ms, want < 3 segments (${(3 * segment).toFixed(2)} s)`,
    );
    await page.close();
  });

  test('offline message when the publisher stops, playback resumes when it returns', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/t'));
    await assertPlays(page, { advance: 1, within: 5000 });
    await push.stop();
    await waitFor('the offline message', 15_000, async () => {
      const b = await banner(page);
      return b.state === 'offline' && !b.hidden && /offline/i.test(b.text);
    });
    await screenshot(page, 'offline');
    push = startPusher(srv.rtmpUrl('live/t'));
    await waitFor('the offline message to go', 30_000, async () => (await banner(page)).hidden);
    const s = await assertPlays(page, { advance: 2, within: 5000 });
    assert.equal(s.w, 1280);
    await screenshot(page, 'resumed');
    await page.close();
  });

  test('fits a phone-sized screen', T, async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(srv.url('/live?stream=live/t'));
    await assertPlays(page, { advance: 1, within: 5000 });
    const fit = await page.evaluate(() => {
      const v = document.querySelector('video').getBoundingClientRect();
      const o = document.getElementById('overlay').getBoundingClientRect();
      return { scroll: document.documentElement.scrollWidth, video: v.width, overlayRight: o.right, overlayH: o.height, videoH: v.height };
    });
    assert.ok(fit.scroll <= 390, `page scrolls sideways: ${fit.scroll} px`);
    assert.ok(fit.video >= 380 && fit.video <= 390, `video ${fit.video} px wide`);
    assert.ok(fit.overlayRight <= 390, 'overlay inside the screen');
    assert.ok(fit.overlayH < fit.videoH, 'overlay smaller than the picture');
    assert.ok((await videoState(page)).w === 1280);
    await screenshot(page, 'phone');
    await page.close();
  });
});
