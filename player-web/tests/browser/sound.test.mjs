// What the viewer hears, measured in headless Chromium on `onair push`'s test pattern (a
// 1 kHz tone at -20 dBFS, and a 100 ms 2 kHz beep on each second of the pusher's clock, on
// the same instant as the frame whose SEI counter is a multiple of the frame rate): after
// "unmute" the player's WebAudio analyser hears the tone, its beep finder hears every beep
// and no dropout, and the overlay's A/V offset (beep heard minus its frame shown) stays in
// bounds for 60 s, over HTTP-FLV and over HLS. The medians go to test-results/av-sync.json.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertPlays, launchBrowser, median, startPusher, startServer, videoState, waitFor, waitLive, writeResult } from './lib.mjs';

/** The A/V target is ±45 ms (a benchmark figure, in the README); CI asserts 3× that. */
const AV_BOUND_MS = 135;
const RUN_MS = 60_000;
const T = { timeout: RUN_MS + 60_000 };
let srv;
let push;
let browser;
const measured = {};

before(async () => {
  // The default 2 s HLS segments: with shorter ones hls.js holds so little that a busy CI
  // machine stalls it (a real dropout, seen with 1 s segments on 2 shared cores).
  srv = await startServer();
  push = startPusher(srv.rtmpUrl('live/sound'), ['--size', '320x180', '--bitrate', '300k', '--keyint', '1']);
  await waitLive(srv, 'live', 'sound');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await push?.stop();
  await srv?.stop();
  writeResult('av-sync', measured);
});

const player = (page, fn, ...args) => page.evaluate(([f, a]) => window.onairPlayer[f](...a), [fn, args]);

for (const proto of ['flv', 'hls']) {
  const label = proto === 'flv' ? 'HTTP-FLV' : 'HLS';
  describe(`sound over ${label}`, () => {
    test(`after unmute: the 1 kHz tone, a beep each second and no dropout for ${RUN_MS / 1000} s; A/V offset within ±${AV_BOUND_MS} ms`, T, async () => {
      const page = await browser.newPage();
      await page.goto(srv.url(`/live?stream=live/sound${proto === 'hls' ? '&proto=hls' : ''}`));
      await assertPlays(page, { advance: 1, within: 8000, startMs: 30_000 });
      assert.match(await page.locator('#avsync').innerText(), /unmute to measure/);
      await page.locator('#unmute').click();
      await waitFor('the sound to reach the beep finder', 10_000, async () => (await player(page, 'audioStats'))?.seconds > 1);
      const audio = await player(page, 'audioState');
      assert.equal(audio.state, 'running', 'AudioContext running');

      // The tone: the strongest peak under the beep's 2 kHz, interpolated between bins.
      const peaks = [];
      for (let i = 0; i < 10; i++) {
        peaks.push(await player(page, 'audioPeak', 20, 1800));
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const p of peaks) {
        assert.ok(Math.abs(p.hz - 1000) <= 5, `FFT peak at ${p.hz.toFixed(2)} Hz, want 1000 ± 5`);
        assert.ok(p.db > -50, `the tone is heard: peak ${p.db.toFixed(1)} dB`);
      }

      // Beeps, dropouts and the A/V offset over the run, from the moment of unmute on.
      // The beeps mark seconds of media, not of the clock: a player catching up with the
      // live edge plays faster than real time (hls.js up to 1.2×; a CI run heard 63 beeps in
      // 60.2 s of audio time over 62.9 s of media), so they are counted against currentTime.
      await page.evaluate(() => window.onairPlayer.resetAudioStats());
      const start = Date.now();
      const mediaStart = (await videoState(page)).t;
      await waitFor(`${RUN_MS / 1000} s of sound`, RUN_MS + 20_000, async () => (await player(page, 'audioStats'))?.seconds >= RUN_MS / 1000);
      const stats = await player(page, 'audioStats');
      const mediaSeconds = (await videoState(page)).t - mediaStart;
      const offsets = await player(page, 'avOffsets');
      const overlay = await page.evaluate(() => {
        const el = document.getElementById('avsync');
        return { text: el.textContent, ms: el.dataset.avOffsetMs };
      });
      const sorted = [...offsets].sort((a, b) => a - b);
      const r = {
        seconds: Math.round(stats.seconds * 10) / 10,
        wall_s: Math.round((Date.now() - start) / 100) / 10,
        media_s: Math.round(mediaSeconds * 10) / 10,
        tone_hz: peaks.map((p) => Math.round(p.hz * 100) / 100),
        beeps: stats.beeps,
        dropouts: stats.dropouts,
        dropout_ms: Math.round(stats.dropoutMs),
        min_50ms_rms_ratio: Math.round(stats.minWindowRatio * 1000) / 1000,
        av_offsets: offsets.length,
        av_median_ms: offsets.length ? Math.round(median(offsets)) : null,
        av_min_ms: Math.round(sorted[0]),
        av_max_ms: Math.round(sorted[sorted.length - 1]),
        within_45ms: offsets.filter((o) => Math.abs(o) <= 45).length,
        audio,
      };
      measured[proto] = r;
      console.log(`  ${label}: ${JSON.stringify({ ...r, audio: undefined })}`);
      await page.close();

      const secs = Math.floor(stats.seconds);
      const mediaSecs = Math.floor(mediaSeconds);
      assert.ok(
        stats.beeps >= mediaSecs - 1 && stats.beeps <= mediaSecs + 1,
        `${stats.beeps} beeps in ${mediaSeconds.toFixed(1)} s of media (${stats.seconds.toFixed(1)} s of audio time)`,
      );
      assert.equal(stats.dropouts, 0, `dropouts (a 50 ms window under a quarter of the tone's RMS); lowest ratio ${stats.minWindowRatio}`);
      assert.ok(offsets.length >= 0.75 * secs, `only ${offsets.length} beeps paired with their frames in ${secs} s`);
      // A frame presented late under load can push one pairing past the bound (a full run
      // saw 137 ms once among 62, the median 44): one in 20 may be out, none by twice the bound.
      const outside = offsets.filter((o) => Math.abs(o) > AV_BOUND_MS).length;
      assert.ok(
        outside <= Math.floor(offsets.length / 20) && sorted[0] >= -2 * AV_BOUND_MS && sorted[sorted.length - 1] <= 2 * AV_BOUND_MS,
        `A/V offsets ${r.av_min_ms}..${r.av_max_ms} ms, ${outside} of ${offsets.length} outside ±${AV_BOUND_MS}`,
      );
      assert.match(overlay.text, /^[+-]?\d+ ms$/, `overlay shows ${overlay.text}`);
    });
  });
}
