// What a viewer expects of the page, in headless Chromium against a real `onair serve` and
// `onair push` (320x180 test pattern): the quality beacon it posts (its latency is the
// overlay's), volume, mute, play/pause, fullscreen and picture-in-picture by button and key,
// the waiting screen of a stream that has not started (it plays by itself once live), and
// playback where the server keeps its stream list private ([api] public_list = false).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertPlays, launchBrowser, startPusher, startServer, videoState, waitFor, waitLive, writeResult } from './lib.mjs';

const T = { timeout: 60_000 };
const PATTERN = ['--size', '320x180', '--bitrate', '300k', '--keyint', '1'];
let srv;
let push;
let browser;
const measured = {};

before(async () => {
  srv = await startServer();
  push = startPusher(srv.rtmpUrl('live/v'), PATTERN);
  await waitLive(srv, 'live', 'v');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await push?.stop();
  await srv?.stop();
  writeResult('viewer', measured);
});

const overlayLatency = (page) =>
  page.evaluate(() => {
    const el = document.getElementById('latency');
    return { ms: el.dataset.latencyMs ? Number(el.dataset.latencyMs) : null, kind: el.dataset.latencyKind };
  });

test('the quality beacon: POST /api/qoe every interval, its latency the overlay\'s within 10 %', T, async () => {
  const page = await browser.newPage();
  const beacons = [];
  page.on('request', (req) => {
    if (req.method() !== 'POST' || !req.url().endsWith('/api/qoe')) return;
    // The overlay at the moment the beacon leaves.
    const shown = overlayLatency(page).catch(() => null);
    beacons.push({ req, shown, body: req.postData(), type: req.headers()['content-type'] });
  });
  await page.goto(srv.url('/live?stream=live/v&qoe_ms=2000'));
  await assertPlays(page, { advance: 1, within: 5000 });
  await waitFor('an end-to-end latency on the overlay', 10_000, async () => (await overlayLatency(page)).kind === 'e2e');
  const from = beacons.length;
  await waitFor('two beacons after the latency shows', 15_000, () => beacons.length >= from + 2);
  const got = [];
  for (const b of beacons.slice(from, from + 2)) {
    const body = JSON.parse(b.body);
    const shown = await b.shown;
    got.push({ body, shown });
    assert.equal(b.type, 'application/json');
    assert.deepEqual(Object.keys(body), [
      'stream', 'protocol', 'session', 'interval_ms', 'latency_ms', 'stalls', 'stall_ms', 'dropped_frames', 'av_offset_ms',
    ]);
    assert.equal(body.stream, 'live/v');
    assert.equal(body.protocol, 'flv');
    assert.match(body.session, /^[0-9a-f]{16}$/);
    assert.ok(body.interval_ms >= 1500 && body.interval_ms <= 4000, `interval_ms ${body.interval_ms} for a 2000 ms interval`);
    assert.equal(shown.kind, 'e2e');
    assert.ok(Number.isInteger(body.latency_ms) && body.latency_ms > 0, `latency_ms ${body.latency_ms}`);
    assert.ok(Math.abs(body.latency_ms - shown.ms) <= 0.1 * shown.ms, `beacon latency ${body.latency_ms} ms, overlay ${shown.ms} ms`);
    for (const k of ['stalls', 'stall_ms', 'dropped_frames']) {
      assert.ok(Number.isInteger(body[k]) && body[k] >= 0, `${k} ${body[k]}`);
    }
    assert.ok(body.stall_ms <= body.interval_ms, 'stall time within the interval');
    // Muted: nothing heard, so no A/V offset.
    assert.equal(body.av_offset_ms, null);
  }
  assert.equal(got[0].body.session, got[1].body.session, 'one session per page');
  measured.beacons = got;
  await page.close();
});

test('a stall (the publisher frozen for 3 s) is counted in a beacon, with the time it lasted', T, async () => {
  const page = await browser.newPage();
  const beacons = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/api/qoe')) beacons.push(JSON.parse(req.postData()));
  });
  await page.goto(srv.url('/live?stream=live/v&qoe_ms=2000'));
  await assertPlays(page, { advance: 2, within: 6000 });
  const from = beacons.length;
  // The playhead as the test sees it: when it last moved.
  let last = -1;
  let movedAt = Date.now();
  const still = async () => {
    const t = (await videoState(page)).t;
    if (t !== last) [last, movedAt] = [t, Date.now()];
    return Date.now() - movedAt;
  };
  // The pusher stops sending (its connection stays open), so the player's buffer runs dry.
  push.child.kill('SIGSTOP');
  let stoodStill;
  try {
    await waitFor('the playhead to stand still for 1 s', 15_000, async () => (await still()) >= 1000);
    await new Promise((r) => setTimeout(r, 2000)); // the stall itself: the condition under test
  } finally {
    push.child.kill('SIGCONT');
  }
  await waitFor('the playhead to move again', 20_000, async () => {
    const before = movedAt;
    const s = await still();
    if (movedAt !== before) stoodStill = movedAt - before;
    return stoodStill !== undefined || s < 0;
  });
  const n = beacons.length;
  await waitFor('a beacon after playback resumed', 10_000, () => beacons.length >= n + 1);
  const after = beacons.slice(from);
  const stalls = after.reduce((a, b) => a + b.stalls, 0);
  const stallMs = after.reduce((a, b) => a + b.stall_ms, 0);
  measured.stall = { seen_by_test_ms: stoodStill, stalls, stall_ms: stallMs, beacons: after };
  assert.ok(stoodStill >= 2500, `the playhead stood still ${stoodStill} ms`);
  assert.ok(stalls >= 1, `stalls reported: ${stalls}`);
  // The test polls every ~100 ms and the page every 250 ms: the two agree within that and more.
  assert.ok(Math.abs(stallMs - stoodStill) <= Math.max(600, 0.3 * stoodStill), `stall_ms ${stallMs}, the test saw ${stoodStill} ms`);
  await page.close();
});

test('volume, mute (m), play/pause (space), fullscreen (f) and picture-in-picture', T, async () => {
  const page = await browser.newPage();
  await page.goto(srv.url('/live?stream=live/v'));
  await assertPlays(page, { advance: 1, within: 5000 });
  const media = () =>
    page.evaluate(() => {
      const v = document.querySelector('video');
      return { muted: v.muted, volume: v.volume, paused: v.paused, fullscreen: document.fullscreenElement?.id ?? null, pip: document.pictureInPictureElement === v };
    });
  assert.equal((await media()).muted, true, 'starts muted');
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('m');
  await waitFor('m to unmute', 3000, async () => !(await media()).muted);
  await waitFor('the sound in the analyser', 10_000, async () => (await page.evaluate(() => window.onairPlayer.audioStats()))?.seconds > 1.5);
  const loud = (await page.evaluate(() => window.onairPlayer.audioStats())).toneRms;

  // The slider sets the element's volume, and the sound heard follows.
  await page.locator('#volume').fill('0.5');
  assert.equal((await media()).volume, 0.5);
  await page.evaluate(() => window.onairPlayer.resetAudioStats());
  await waitFor('sound at the new volume', 10_000, async () => (await page.evaluate(() => window.onairPlayer.audioStats()))?.seconds > 1.5);
  const half = (await page.evaluate(() => window.onairPlayer.audioStats())).toneRms;
  measured.tone_rms = { volume_1: loud, volume_0_5: half };
  assert.ok(Math.abs(half / loud - 0.5) < 0.1, `tone RMS ${half} at volume 0.5 vs ${loud} at 1`);

  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('m');
  await waitFor('m to mute again', 3000, async () => (await media()).muted);
  await page.keyboard.press(' ');
  await waitFor('space to pause', 3000, async () => (await media()).paused);
  await page.keyboard.press(' ');
  await waitFor('space to play again', 3000, async () => !(await media()).paused);
  await assertPlays(page, { advance: 1, within: 5000 });

  await page.keyboard.press('f');
  await waitFor('f to go fullscreen', 3000, async () => (await media()).fullscreen === 'player-section');
  await page.keyboard.press('f');
  await waitFor('f to leave fullscreen', 3000, async () => (await media()).fullscreen === null);
  await page.locator('#fullscreen').click();
  await waitFor('the button to go fullscreen', 3000, async () => (await media()).fullscreen === 'player-section');
  await page.locator('#fullscreen').click();
  await waitFor('the button to leave fullscreen', 3000, async () => (await media()).fullscreen === null);

  const pipEnabled = await page.evaluate(() => document.pictureInPictureEnabled);
  measured.pip_enabled = pipEnabled;
  assert.equal(await page.locator('#pip').isVisible(), pipEnabled, 'the PiP button shows where PiP exists');
  if (pipEnabled) {
    await page.locator('#pip').click();
    await waitFor('picture-in-picture', 3000, async () => (await media()).pip);
    await page.locator('#pip').click();
    await waitFor('back from picture-in-picture', 3000, async () => !(await media()).pip);
  }
  await page.close();
});

test('a stream not live yet: "waiting for the stream to start", then it plays by itself', T, async () => {
  const page = await browser.newPage();
  await page.goto(srv.url('/live?stream=live/later'));
  await waitFor('the waiting screen', 10_000, async () =>
    page.evaluate(() => {
      const b = document.getElementById('banner');
      return b.dataset.state === 'waiting' && getComputedStyle(b).display !== 'none' && /waiting for the stream to start/i.test(b.textContent);
    }),
  );
  const later = startPusher(srv.rtmpUrl('live/later'), PATTERN);
  try {
    const since = Date.now();
    await assertPlays(page, { advance: 1, within: 5000, startMs: 20_000 });
    measured.waiting_to_playing_ms = Date.now() - since;
    assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById('banner')).display), 'none');
  } finally {
    await later.stop();
  }
  await page.close();
});

test('plays with [api] public_list = false, from the per-stream endpoint', T, async () => {
  const priv = await startServer({ toml: '[api]\npublic_list = false\n' });
  const p = startPusher(priv.rtmpUrl('live/p'), PATTERN);
  try {
    await waitFor('live/p live', 20_000, async () => {
      const r = await fetch(priv.url('/api/streams/live/p'));
      return r.ok && (await r.json()).video?.width;
    });
    assert.equal((await fetch(priv.url('/api/streams'))).status, 404, 'the list is private');
    const page = await browser.newPage();
    await page.goto(priv.url('/live?stream=live/p'));
    const s = await assertPlays(page, { advance: 1, within: 5000, startMs: 20_000 });
    assert.equal(s.w, 320);
    assert.equal(await page.locator('#list-private').isVisible(), true, 'the page says the list is private');
    assert.ok((await videoState(page)).t > 0);
    await page.close();
  } finally {
    await p.stop();
    await priv.stop();
  }
});
