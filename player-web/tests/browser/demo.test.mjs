// `onair demo`: one command starts the server and the test-pattern pusher and prints the
// player URL; that URL plays in Chromium with the end-to-end latency overlay; SIGTERM ends
// it cleanly. (scripts/test.sh builds the player first, as the README's run command does.)

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertPlays, launchBrowser, sampleLatency, screenshot, startDemo } from './lib.mjs';

let demo;
let browser;

after(async () => {
  await browser?.close();
  await demo?.stop();
});

test('onair demo serves a playing stream at the URL it prints', { timeout: 90_000 }, async () => {
  demo = await startDemo();
  assert.match(demo.url, /^http:\/\/127\.0\.0\.1:\d+\/live\?stream=live\/demo$/);
  browser = await launchBrowser();
  const page = await browser.newPage();
  await page.goto(demo.url);
  const s = await assertPlays(page, { advance: 3, within: 5000, startMs: 30_000 });
  assert.equal(s.w, 1280, 'videoWidth');
  const samples = await sampleLatency(page, { forMs: 2000 });
  assert.ok(samples.some((x) => x.kind === 'e2e'), 'the demo stream carries the pusher clock');
  await screenshot(page, 'demo');
  await page.close();
  const code = await demo.stop();
  assert.equal(code, 0, 'onair demo exits 0 on SIGTERM');
  demo = null;
});
