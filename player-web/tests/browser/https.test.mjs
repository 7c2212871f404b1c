// Issue 13: the player over HTTPS (the server's self-signed certificate; Chromium is told
// to accept it), playing HTTP-FLV and HLS from the HTTPS listener, with the stream
// published over RTMPS by `onair push --insecure`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertPlays, launchBrowser, startPusher, startServer, waitLive } from './lib.mjs';

const T = { timeout: 90_000 };
let srv;
let push;
let browser;

before(async () => {
  srv = await startServer({
    args: ['--https-addr', '127.0.0.1:0', '--rtmps-addr', '127.0.0.1:0', '--tls-self-signed'],
  });
  assert.ok(srv.https, 'the listening line names the HTTPS listener');
  push = startPusher(`rtmps://${srv.rtmps}/live/s`, ['--insecure', '--size', '640x360', '--bitrate', '800k']);
  await waitLive(srv, 'live', 's');
  browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
});

after(async () => {
  await browser?.close();
  await push?.stop();
  await srv?.stop();
});

describe('the player over HTTPS', () => {
  test('HTTP-FLV over HTTPS plays: +3 s of currentTime within 5 s', T, async () => {
    const page = await browser.newPage();
    await page.goto(`https://${srv.https}/live?stream=live/s`);
    assert.ok(page.url().startsWith('https://'), page.url());
    const s = await assertPlays(page, { advance: 3, within: 5000 });
    assert.equal(s.w, 640, 'videoWidth');
    assert.equal(await page.locator('#via').innerText(), 'HTTP-FLV');
    await page.close();
  });

  test('HLS over HTTPS plays: +3 s of currentTime within 5 s', T, async () => {
    const page = await browser.newPage();
    await page.goto(`https://${srv.https}/live?stream=live/s&proto=hls`);
    const s = await assertPlays(page, { advance: 3, within: 5000, startMs: 30000 });
    assert.equal(s.w, 640, 'videoWidth');
    assert.equal(await page.locator('#via').innerText(), 'HLS');
    await page.close();
  });
});
