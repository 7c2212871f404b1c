// Shared pieces of the browser tests: the real `onair` binary (server, pusher, demo) as
// child processes on loopback ports the OS chooses, Debian's Chromium driven by
// playwright-core (never a downloaded browser), deadline waits and screenshots.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const playerRoot = resolve(here, '../..');
export const repoRoot = resolve(playerRoot, '..');
/** Screenshots and measured figures land here (git-ignored; named in the README). */
export const resultsDir = join(playerRoot, 'test-results');

/** The onair binary: $ONAIR_BIN, else the debug build `cargo test` leaves behind. */
export function onairBin() {
  const bin = process.env.ONAIR_BIN || join(repoRoot, 'target', 'debug', 'onair');
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: run \`cargo build\` first (or set ONAIR_BIN)`);
  }
  return bin;
}

export function chromiumPath() {
  const exe = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(exe)) {
    throw new Error(`${exe} does not exist: install Debian's chromium (scripts/install-deps.sh does)`);
  }
  return exe;
}

const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Polls `cond` (sync or async) every 100 ms until it returns a truthy value, which it
 *  returns; throws naming `what` after `ms`. */
export async function waitFor(what, ms, cond) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Reads the child's stdout until a line matches `re`; resolves with the match. */
function waitLine(child, re, what, ms = 20000) {
  return new Promise((res, rej) => {
    const rl = createInterface({ input: child.stdout });
    const timer = setTimeout(() => rej(new Error(`no ${what} on stdout within ${ms} ms`)), ms);
    rl.on('line', (line) => {
      const m = re.exec(line);
      if (m) {
        clearTimeout(timer);
        res(m);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`process exited (${code}) before printing ${what}`));
    });
  });
}

/** SIGTERM, then SIGKILL after `ms`; resolves with the exit code (null if killed). */
async function stopChild(child, ms = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const done = new Promise((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  const code = await done;
  clearTimeout(t);
  return code;
}

/** `onair serve` on 127.0.0.1 with OS-chosen ports, serving the built player. */
export async function startServer({ toml = '', playerDir = join(playerRoot, 'dist'), args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'onair-web-'));
  const cfg = join(dir, 'onair.toml');
  writeFileSync(cfg, `[http]\nplayer_dir = ${JSON.stringify(playerDir)}\n${toml}\n`);
  const child = track(
    spawn(onairBin(), ['serve', '--rtmp-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--config', cfg, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    }),
  );
  const m = await waitLine(child, /onair listening rtmp=(\S+) http=(\S+)(.*)/, 'the listening line');
  const [, rtmp, http, rest] = m;
  // With `--https-addr` / `--rtmps-addr`: the TLS listeners.
  const https = rest.match(/ https=(\S+)/)?.[1];
  const rtmps = rest.match(/ rtmps=(\S+)/)?.[1];
  return {
    rtmp,
    http,
    https,
    rtmps,
    url: (p) => `http://${http}${p}`,
    rtmpUrl: (p) => `rtmp://${rtmp}/${p}`,
    async streams() {
      const r = await fetch(`http://${http}/api/streams`);
      return r.json();
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `onair push` with its test pattern (burned-in clock, SEI clock in every frame) and tone. */
export function startPusher(url, args = []) {
  const child = track(
    spawn(onairBin(), ['push', url, '--quiet', '--overlay', 'clock', ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    }),
  );
  return { stop: () => stopChild(child), child };
}

/** `onair demo` on OS-chosen ports; resolves once it printed the player URL. */
export async function startDemo(extraArgs = []) {
  const child = track(
    spawn(onairBin(), ['demo', '--rtmp-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', ...extraArgs], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    }),
  );
  const m = await waitLine(child, /(http:\/\/\S+\/live\?stream=\S+)/, 'the player URL', 30000);
  return { url: m[1], stop: () => stopChild(child) };
}

export async function waitLive(server, app, name, ms = 30000) {
  return waitFor(`${app}/${name} live with video`, ms, async () => {
    const list = await server.streams();
    return list.find((s) => s.app === app && s.name === name && s.live && s.video?.width);
  });
}

/** Headless Debian Chromium with a fresh profile, autoplay allowed. */
export async function launchBrowser({ args = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'onair-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      ...args,
    ],
  });
  return {
    context,
    async newPage(opts) {
      const page = await context.newPage(opts);
      // Beacons to a server without POST /api/qoe answer 404/405 by design: not worth a line.
      const beacon = (url) => /\/api\/qoe$/.test(url || '');
      page.on('console', (m) => {
        if (beacon(m.location()?.url)) return;
        if (m.type() === 'error' || m.type() === 'warning') console.log(`  [browser ${m.type()}] ${m.text()}`);
      });
      page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
      page.on('response', (r) => {
        if (r.status() >= 400 && !beacon(r.url())) console.log(`  [browser] ${r.status()} ${r.url()}`);
      });
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

export function writeResult(name, value) {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(value, null, 2) + '\n');
}

/** The page's <video>: currentTime, size, readiness. */
export function videoState(page) {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    return v
      ? { t: v.currentTime, w: v.videoWidth, h: v.videoHeight, paused: v.paused, ready: v.readyState }
      : null;
  });
}

/** Waits for playback to start, then requires currentTime to advance by `advance` seconds
 *  within `within` ms. Returns the final state. */
export async function assertPlays(page, { advance = 3, within = 5000, startMs = 20000 } = {}) {
  const start = await waitFor('playback to start', startMs, async () => {
    const s = await videoState(page);
    return s && s.t > 0 && s.w > 0 ? s : null;
  });
  const t0 = start.t;
  const since = Date.now();
  return waitFor(`currentTime to advance by ${advance} s within ${within} ms (from ${t0.toFixed(2)})`, within, async () => {
    const s = await videoState(page);
    return s && s.t >= t0 + advance ? { ...s, elapsedMs: Date.now() - since, t0 } : null;
  });
}

/** Reads the overlay's latency every `everyMs` for `forMs`; returns the samples. */
export async function sampleLatency(page, { forMs = 8000, everyMs = 250 } = {}) {
  const out = [];
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    const s = await page.evaluate(() => {
      const el = document.getElementById('latency');
      return { ms: el?.dataset.latencyMs, kind: el?.dataset.latencyKind, text: el?.textContent };
    });
    if (s.ms) out.push({ ms: Number(s.ms), kind: s.kind, text: s.text });
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return out;
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Elements that carry the `hidden` attribute but are still rendered (computed display is
 *  not `none`), as "tag#id.class display"; empty when the page hides what it means to. */
export function renderedButHidden(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('[hidden]')]
      .filter((el) => getComputedStyle(el).display !== 'none')
      .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${getComputedStyle(el).display}`),
  );
}

/** The banner and the unmute chip as the viewer gets them: attribute and computed display. */
export function chromeState(page) {
  return page.evaluate(() => {
    const b = document.getElementById('banner');
    const u = document.getElementById('unmute');
    return {
      bannerHidden: b.hidden,
      bannerDisplay: getComputedStyle(b).display,
      unmuteHidden: u.hidden,
      unmuteDisplay: getComputedStyle(u).display,
    };
  });
}

/** ffmpeg publishing a lavfi video source (and a silent stereo track) to `url` in real time,
 *  as H.264 + AAC over RTMP, until stopped. `videoArgs` go after the encoder (tags, etc.). */
export function startFfmpeg(url, lavfi, { fps = 15, gop = 8, videoArgs = [] } = {}) {
  const child = track(
    spawn(
      'ffmpeg',
      [
        '-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
        '-f', 'lavfi', '-i', `${lavfi}:r=${fps}`,
        '-f', 'lavfi', '-i', 'anullsrc=r=48000:cl=stereo',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p',
        '-g', String(gop), '-b:v', '400k', ...videoArgs,
        '-c:a', 'aac', '-b:a', '32k',
        '-f', 'flv', url,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  return { stop: () => stopChild(child), child };
}

/** A screenshot of the page's <video> box as the viewer sees it (everything drawn over it
 *  included), decoded: {width, height, data (RGBA), scale: screenshot px per video px},
 *  plus the boxes of the overlay and chips drawn on purpose over the picture. */
export async function grabVideo(page, name) {
  const { PNG } = await import('pngjs');
  const box = await page.evaluate(() => {
    const v = document.querySelector('video');
    const r = v.getBoundingClientRect();
    // object-fit: contain letterboxes the picture inside the element.
    const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const w = v.videoWidth * s;
    const h = v.videoHeight * s;
    const pic = { x: r.x + (r.width - w) / 2, y: r.y + (r.height - h) / 2, width: w, height: h };
    const ui = ['overlay', 'unmute', 'play']
      .map((id) => document.getElementById(id))
      .filter((el) => el && getComputedStyle(el).display !== 'none')
      .map((el) => el.getBoundingClientRect().toJSON());
    return { pic, ui, vw: v.videoWidth, vh: v.videoHeight };
  });
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `${name}.png`);
  const buf = await page.screenshot({ path, clip: box.pic });
  const png = PNG.sync.read(buf);
  const sx = png.width / box.vw;
  const sy = png.height / box.vh;
  // UI boxes in video pixels, so callers can keep their samples off them.
  const ui = box.ui.map((r) => ({
    x0: (r.x - box.pic.x) / (box.pic.width / box.vw),
    y0: (r.y - box.pic.y) / (box.pic.height / box.vh),
    x1: (r.right - box.pic.x) / (box.pic.width / box.vw),
    y1: (r.bottom - box.pic.y) / (box.pic.height / box.vh),
  }));
  return {
    path,
    vw: box.vw,
    vh: box.vh,
    /** Mean RGB of the (2r+1)² screenshot pixels around video pixel (x, y). */
    rgb(x, y, r = 2) {
      const cx = Math.round(x * sx);
      const cy = Math.round(y * sy);
      const sum = [0, 0, 0];
      let n = 0;
      for (let yy = cy - r; yy <= cy + r; yy++) {
        for (let xx = cx - r; xx <= cx + r; xx++) {
          const i = (Math.min(png.height - 1, Math.max(0, yy)) * png.width + Math.min(png.width - 1, Math.max(0, xx))) * 4;
          sum[0] += png.data[i];
          sum[1] += png.data[i + 1];
          sum[2] += png.data[i + 2];
          n++;
        }
      }
      return sum.map((v) => Math.round(v / n));
    },
    /** True when video pixel (x, y) lies under the overlay or a chip (margin in video px). */
    underUi(x, y, margin = 4) {
      return ui.some((b) => x >= b.x0 - margin && x <= b.x1 + margin && y >= b.y0 - margin && y <= b.y1 + margin);
    },
  };
}
