
// AV1 + Opus from FFmpeg 8 (PyAV's publish.py, the Enhanced RTMP fixture): AV1 passes
// through as RTP (the AV1 payload format), Opus passes through.
describe('WebRTC AV1 + Opus', () => {
  test('an AV1 + Opus publish plays over WHEP: currentTime advances, 320 wide', T, async () => {
    const { spawn, spawnSync } = await import('node:child_process');
    const { join } = await import('node:path');
    const { repoRoot } = await import('./lib.mjs');
    const fixtures = spawnSync('python3', [join(repoRoot, 'tests/peers/fixtures.py')], { encoding: 'utf8' });
    assert.equal(fixtures.status, 0, `fixtures.py: ${fixtures.stderr}`);
    const file = join(fixtures.stdout.trim(), 'av1_opus_aom.mkv');
    const pub = spawn(join(repoRoot, '.venv-av/bin/python'), [join(repoRoot, 'tests/peers/publish.py'), srv.rtmpUrl('live/av1'), file, '--loops', '6'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      const live = await waitLive(srv, 'live', 'av1');
      assert.equal(live.video.codec, 'av1');
      const page = await browser.newPage();
      await page.goto(srv.url('/live?stream=live/av1&proto=webrtc'));
      const s = await assertPlays(page, { advance: 3, within: 8000, startMs: 30_000 });
      assert.equal(s.w, 320, 'videoWidth');
      assert.equal(s.h, 240, 'videoHeight');
      const codec = await page.evaluate(() => document.getElementById('via').textContent);
      assert.equal(codec, 'WebRTC (WHEP)');
      await screenshot(page, 'webrtc-av1');
      await page.close();
    } finally {
      pub.kill('SIGKILL');
    }
  });
});
