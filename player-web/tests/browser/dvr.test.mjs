// The DVR window in Chromium (issue 15): ffmpeg publishes with 0.3 s GOPs, onair records it
// and lists the recorded segments before the live window (3 s: ten 0.3 s segments). Once
// the window holds the 30 s and more, /live shows the timeline; dragging it to its
// oldest end plays from the recording, at least 30 s behind the edge, and "live" brings the
// playhead back to the edge.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPlays, launchBrowser, screenshot, startFfmpeg, startServer, waitFor, waitLive, writeResult } from './lib.mjs';

const T = { timeout: 120_000 };
const SEGMENT_S = 0.3;
/** The fMP4 live window: at least ten segments (hls.window is raised to 10 for delta updates). */
const LIVE_WINDOW_S = 10 * SEGMENT_S;
/** How far back the viewer scrubs: the 30 s. */
const SCRUB_S = 30;
let srv;
let browser;
let push;
let rec;

before(async () => {
  rec = mkdtempSync(join(tmpdir(), 'onair-dvr-rec-'));
  srv = await startServer({
    toml: `[hls]\nsegment_duration_ms = 300\npart_duration_ms = 100\ndvr_window_ms = 600000\n` +
      `[record]\nenabled = true\ndir = ${JSON.stringify(rec)}\nfragment_duration_ms = 300\n`,
  });
  push = startFfmpeg(srv.rtmpUrl('live/dvr'), 'testsrc2=size=640x360', { fps: 30, gop: 9 });
  await waitLive(srv, 'live', 'dvr');
  browser = await launchBrowser();
});

after(async () => {
  await push?.stop();
  await browser?.close();
  await srv?.stop();
  if (rec) rmSync(rec, { recursive: true, force: true });
});

/** The bar's state as the page shows it. */
function bar(page) {
  return page.evaluate(() => {
    const el = document.getElementById('dvr');
    const v = document.querySelector('video');
    return el && v
      ? {
          shown: !el.hidden && getComputedStyle(el).display !== 'none',
          live: el.dataset.live,
          behind: Number(el.dataset.behindS),
          window: Number(el.dataset.windowS),
          label: document.getElementById('dvr-behind').textContent,
          t: v.currentTime,
          frames: v.getVideoPlaybackQuality().totalVideoFrames,
          paused: v.paused,
        }
      : null;
  });
}

describe('the DVR timeline in /live', () => {
  test('scrubs back 30 s into the recording and returns to live', T, async () => {
    const info = await (await fetch(srv.url('/api/streams/live/dvr'))).json();
    assert.equal(info.hls.dvr_window_ms, 600000, 'the API names the DVR window');
    // 30 s and more of segments listed, all but the live window's from the recording.
    await waitFor('the playlist to hold 31 s', 70_000, async () => {
      const text = await (await fetch(srv.url('/live/dvr.m3u8?variant=fmp4'))).text();
      return (text.match(/#EXTINF:/g) || []).length * SEGMENT_S >= SCRUB_S + 1;
    });
    const page = await browser.newPage();
    await page.goto(srv.url('/live?stream=live/dvr&proto=hls'));
    await assertPlays(page, { advance: 1, within: 10_000, startMs: 30_000 });
    const atStart = await waitFor('the timeline, at the live edge', 15_000, async () => {
      const b = await bar(page);
      return b?.shown && b.live === 'yes' && b.window >= SCRUB_S ? b : null;
    });
    assert.equal(atStart.label, 'live');

    // Drag to the oldest end: the playhead goes back into the recorded segments.
    await page.locator('#dvr-range').fill('0');
    let last = null;
    const back = await waitFor('playback from the DVR window', 20_000, async () => {
      last = await bar(page);
      const b = last;
      return b && !b.paused && b.live === 'no' && b.behind >= SCRUB_S ? b : null;
    }).catch((e) => {
      throw new Error(`${e.message}; the bar: ${JSON.stringify(last)}`);
    });
    // It plays there: time and decoded frames go on, still far behind the edge.
    const playing = await waitFor('the picture to move in the DVR window', 10_000, async () => {
      const b = await bar(page);
      return b && b.t >= back.t + 1 && b.frames > back.frames + 15 ? b : null;
    });
    assert.ok(playing.behind >= SCRUB_S, `still ${playing.behind} s behind live`);
    assert.match(playing.label, /^−0:\d\d$/, `the label says how far behind: ${playing.label}`);
    await screenshot(page, 'dvr-behind');

    // "live": back to the edge, playing.
    await page.locator('#dvr-live').click();
    const live = await waitFor('the playhead back at the live edge', 15_000, async () => {
      const b = await bar(page);
      return b && b.live === 'yes' && !b.paused && b.t > playing.t + 2 * LIVE_WINDOW_S ? b : null;
    });
    await waitFor('the picture to move at the live edge', 10_000, async () => {
      const b = await bar(page);
      return b && b.t >= live.t + 1 && b.live === 'yes' ? b : null;
    });
    await screenshot(page, 'dvr-live');
    writeResult('dvr', {
      window_s: atStart.window,
      behind_after_scrub_s: playing.behind,
      behind_after_live_s: live.behind,
      live_window_s: LIVE_WINDOW_S,
    });
    await page.close();
  });
});
