// WebRTC playback in /live with Debian's Chromium against a real `onair serve` and a real
// `onair push` (test pattern with the SEI clock, H.264 + AAC): WHEP through the page's
// WebRTC button path, the picture's size, end-to-end latency from the SEI clock read out
// of the encoded frames, getStats() in the overlay, the tone heard after unmute (the AAC
// transcoded to Opus by the server), offline and resume. Loopback only:
// the server advertises 127.0.0.1 and Chromium may use it
// (--allow-loopback-in-peer-connection).

import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  repoRoot,
  assertPlays,
  launchBrowser,
  median,
  sampleLatency,
  screenshot,
  startPusher,
  startServer,
  waitFor,
  waitLive,
  writeResult,
} from './lib.mjs';

const T = { timeout: 120_000 };
let srv;
let push;
let browser;
const measured = {};
const PUSH_ARGS = ['--size', '640x360'];

before(async () => {
  srv = await startServer({
    toml: '[hub]\npublisher_grace_ms = 3000\n[webrtc]\nudp_addr = "127.0.0.1:0"\n',
  });
  push = startPusher(srv.rtmpUrl('live/w'), PUSH_ARGS);
  await waitLive(srv, 'live', 'w');
  browser = await launchBrowser({ args: ['--allow-loopback-in-peer-connection'] });
});

/** After "unmute", the page's WebAudio analyser hears a 1 kHz tone: the strongest spectral
 *  peak under 1.8 kHz (`onair push` beeps at 2 kHz), interpolated between bins, 10 readings
 *  100 ms apart, each within ±5 Hz and louder than -50 dB. Returns the frequencies. */
async function assertTone(page) {
  await page.locator('#unmute').click();
  const first = await waitFor('the WebRTC sound to reach the analyser', 10_000, async () => {
    const p = await page.evaluate(() => window.onairPlayer.audioPeak(20, 1800));
    return p && p.db > -50 ? p : null;
  });
  assert.equal((await page.evaluate(() => window.onairPlayer.audioState()))?.state, 'running', 'AudioContext running');
  const peaks = [first];
  for (let i = 0; i < 9; i++) {
    await new Promise((r) => setTimeout(r, 100));
    peaks.push(await page.evaluate(() => window.onairPlayer.audioPeak(20, 1800)));
  }
  const hz = peaks.map((p) => Math.round(p.hz * 100) / 100);
  console.log(`  WebRTC: tone peaks ${hz.join(', ')} Hz`);
  for (const p of peaks) {
    assert.ok(Math.abs(p.hz - 1000) <= 5, `FFT peak at ${p.hz.toFixed(2)} Hz, want 1000 ± 5`);
    assert.ok(p.db > -50, `the tone is heard: peak ${p.db.toFixed(1)} dB`);
  }
  return hz;
}

after(async () => {
  await browser?.close();
  await push?.stop();
  await srv?.stop();
  writeResult('webrtc-latency', measured);
});

describe('WebRTC in the player', () => {
  test('H.264 + AAC over WHEP: plays, right size, end-to-end latency, getStats in the overlay', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/w&proto=webrtc'));
    const s = await assertPlays(page, { advance: 3, within: 8000, startMs: 30_000 });
    assert.equal(s.w, 640, 'videoWidth');
    assert.equal(s.h, 360, 'videoHeight');
    assert.equal(await page.locator('#via').innerText(), 'WebRTC (WHEP)');
    assert.equal(await page.locator('#proto-webrtc').getAttribute('class'), 'chip on');
    await new Promise((r) => setTimeout(r, 2000));
    const samples = await sampleLatency(page, { forMs: 10_000, everyMs: 250 });
    assert.ok(samples.length >= 20, `the overlay showed a latency only ${samples.length} times`);
    assert.deepEqual([...new Set(samples.map((x) => x.kind))], ['e2e'], 'latency is end-to-end (SEI clock)');
    measured.webrtc_median_ms = median(samples.map((x) => x.ms));
    console.log(`  WebRTC: median end-to-end latency ${measured.webrtc_median_ms} ms over ${samples.length} readings`);
    // The target is 300 ms on loopback; CI asserts 3x that, so only breakage fails.
    assert.ok(measured.webrtc_median_ms < 900, `WebRTC median latency ${measured.webrtc_median_ms} ms, want < 900`);
    const rtc = await page.evaluate(() => ({
      hidden: document.getElementById('rtc-row').hidden,
      jitter: document.getElementById('jitter').dataset.jitterBufferMs,
      lost: document.getElementById('loss').dataset.lost,
    }));
    assert.equal(rtc.hidden, false, 'the WebRTC stats row shows');
    assert.match(rtc.jitter || '', /^\d+$/, 'jitter-buffer delay from getStats()');
    assert.match(rtc.lost || '', /^\d+$/, 'packets lost from getStats()');
    measured.webrtc_jitter_buffer_ms = Number(rtc.jitter);
    await screenshot(page, 'webrtc');

    // Sound: the server's Opus transcode of the pusher's AAC, decoded by Chromium.
    measured.webrtc_tone_hz = await assertTone(page);
    await page.close();

    // HTTP-FLV from the same pusher in the same run, for the README's comparison.
    const flv = await browser.newPage();
    await flv.goto(srv.url('/live?stream=live/w'));
    await assertPlays(flv, { advance: 1, within: 8000 });
    await new Promise((r) => setTimeout(r, 3000));
    const flvSamples = await sampleLatency(flv, { forMs: 10_000, everyMs: 250 });
    measured.flv_median_ms = median(flvSamples.filter((x) => x.kind === 'e2e').map((x) => x.ms));
    console.log(`  HTTP-FLV (same run): median end-to-end latency ${measured.flv_median_ms} ms`);
    await flv.close();
  });

  test('offline message when the publisher stops, WebRTC playback resumes when it returns', T, async () => {
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/w&proto=webrtc'));
    await assertPlays(page, { advance: 1, within: 8000, startMs: 30_000 });
    await push.stop();
    await waitFor('the offline message', 15_000, async () =>
      page.evaluate(() => document.getElementById('banner').dataset.state === 'offline'),
    );
    push = startPusher(srv.rtmpUrl('live/w'), PUSH_ARGS);
    await waitFor('the offline message to go', 30_000, async () =>
      page.evaluate(() => document.getElementById('banner').hidden),
    );
    const s = await assertPlays(page, { advance: 2, within: 8000, startMs: 30_000 });
    assert.equal(s.w, 640);
    await page.close();
  });
});

// AV1 + Opus from FFmpeg 8 (PyAV's publish.py, the Enhanced RTMP fixture): AV1 passes
// through as RTP (the AV1 payload format), Opus passes through and is heard (its 1 kHz sine).
describe('WebRTC AV1 + Opus', () => {
  test('an AV1 + Opus publish plays over WHEP: currentTime advances, 320 wide', T, async () => {
    const fixtures = spawnSync('python3', [join(repoRoot, 'tests/peers/fixtures.py')], { encoding: 'utf8' });
    assert.equal(fixtures.status, 0, `fixtures.py: ${fixtures.stderr}`);
    const file = join(fixtures.stdout.trim(), 'av1_opus_aom.mkv');
    const pub = spawn(
      join(repoRoot, '.venv-av/bin/python'),
      [join(repoRoot, 'tests/peers/publish.py'), srv.rtmpUrl('live/av1'), file, '--loops', '6'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    try {
      const live = await waitLive(srv, 'live', 'av1');
      assert.equal(live.video.codec, 'av1');
      const page = await browser.newPage();
      await page.goto(srv.url('/live?stream=live/av1&proto=webrtc'));
      const s = await assertPlays(page, { advance: 3, within: 8000, startMs: 30_000 });
      assert.equal(s.w, 320, 'videoWidth');
      assert.equal(s.h, 240, 'videoHeight');
      assert.equal(await page.locator('#via').innerText(), 'WebRTC (WHEP)');
      // The fixture's 1 kHz sine, its Opus passed through.
      measured.av1_opus_tone_hz = await assertTone(page);
      await screenshot(page, 'webrtc-av1');
      await page.close();
    } finally {
      pub.kill('SIGKILL');
    }
  });
});
