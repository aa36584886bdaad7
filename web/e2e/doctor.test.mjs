// The /doctor page in a real Chromium against the real binary (SFU on loopback): the checks
// run one after the other; on localhost the page is a secure context, the live connection
// upgrades to WebSocket, UDP to the SFU's probe answers with a round-trip time, ICE-TCP says
// it is off on this server, and with no TURN configured the relay check warns; the report
// copies as text; a room whose devices are refused links to the page, which then says how to
// allow them; in Vietnamese every line is Vietnamese. Then a server with ICE-TCP on: TCP
// answers too; with coturn (Debian's TURN server) on loopback the relay path answers, to the
// SFU's probe and, in mesh mode (where UDP/TCP are not applicable), between two local
// connections.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { MEDIA_ARGS, createRoom, launchBrowser, screenshot, signInAsGuest, startCoturn, startServer } from './harness.mjs';

const STEP = { timeout: 90000 };
let browser;

before(async () => {
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
});

after(async () => {
  await browser?.close();
});

async function doctorPage(server, locale = 'en-US') {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1400 }, locale });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  // Counts the page's getUserMedia calls: the page must not prompt before a press.
  await context.addInitScript(() => {
    const media = navigator.mediaDevices;
    if (!media) return;
    const original = media.getUserMedia.bind(media);
    window.__gumCalls = 0;
    media.getUserMedia = (constraints) => {
      window.__gumCalls += 1;
      return original(constraints);
    };
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(`${server.url}/doctor`);
  await signInAsGuest(page, 'Bác sĩ');
  await page.locator('[data-testid="doctor"]').waitFor({ timeout: 10000 });
  return page;
}

/** Waits until no check is pending or running; returns {id: {status, text, rtt}}. */
async function settled(page) {
  await page.waitForFunction(
    () => {
      const rows = [...document.querySelectorAll('.doctor-check')];
      return rows.length === 6 && rows.every((r) => !['pending', 'running'].includes(r.dataset.status));
    },
    null,
    { timeout: 75000 },
  );
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('.doctor-check')].map((r) => [
        r.dataset.check,
        { status: r.dataset.status, text: r.textContent, rtt: r.dataset.rtt === undefined ? null : Number(r.dataset.rtt) },
      ]),
    ),
  );
}

describe('the /doctor page (SFU, ICE-TCP off, no TURN)', () => {
  let server;
  let page;
  let results;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await page?.context().close();
    await server?.stop();
  });

  it('runs every check and reports what it found', STEP, async () => {
    page = await doctorPage(server);
    results = await settled(page);
    await screenshot(page, 'doctor-en');
    console.log('doctor results:', JSON.stringify(results, null, 1));
    assert.equal(results.secure.status, 'ok', results.secure.text);
    assert.equal(results.realtime.status, 'ok', results.realtime.text);
    assert.match(results.realtime.text, /WebSocket/);
    assert.equal(results.udp.status, 'ok', results.udp.text);
    assert.ok(Number.isFinite(results.udp.rtt) && results.udp.rtt >= 0, `UDP round trip: ${results.udp.rtt}`);
    assert.match(results.udp.text, new RegExp(`Round trip ${results.udp.rtt} ms`));
    assert.equal(results.tcp.status, 'warn');
    assert.match(results.tcp.text, /Not enabled on this server/);
    assert.equal(results.relay.status, 'warn');
    assert.match(results.relay.text, /turn\.enabled/);
  });

  it('asks for the devices only on a press, and finds the fake ones', STEP, async () => {
    assert.equal(await page.evaluate(() => window.__gumCalls), 0, 'no prompt before the press');
    await page.getByTestId('doctor-ask-devices').click();
    const row = page.locator('.doctor-check[data-check="devices"]');
    await page.waitForFunction(() => document.querySelector('.doctor-check[data-check="devices"]')?.dataset.status === 'ok', null, {
      timeout: 20000,
    });
    assert.match(await row.textContent(), /Both work/);
    assert.ok((await page.evaluate(() => window.__gumCalls)) > 0, 'the press asked for the devices');
  });

  it('copies the report as plain text', STEP, async () => {
    await page.getByTestId('doctor-copy').click();
    await page.getByTestId('doctor-copy-state').waitFor();
    const report = await page.getByTestId('doctor-report').inputValue();
    assert.match(report, /^TalkConnect connection report/);
    assert.match(report, /\[OK\] Audio and video over UDP \(direct\)/);
    assert.match(report, /\[Warning\] Audio and video over TCP \(fallback\)/);
    const copied = await page.evaluate(() => navigator.clipboard.readText().catch(() => null));
    if (copied !== null) assert.equal(copied, report);
  });

  it('a room whose devices are refused links to /doctor, which says how to allow them', STEP, async () => {
    // Chromium without the fake prompt: no permission granted, so getUserMedia is refused.
    const strict = await launchBrowser({ extraArgs: MEDIA_ARGS, fakeUi: false });
    try {
      const context = await strict.newContext({ viewport: { width: 1100, height: 900 }, locale: 'en-US' });
      const room = await context.newPage();
      await room.goto(server.url);
      await signInAsGuest(room, 'Refused');
      await createRoom(room, { title: 'No devices' });
      await room.getByTestId('media-notice').waitFor({ timeout: 20000 });
      const link = room.getByTestId('doctor-link');
      assert.equal(await link.getAttribute('href'), '/doctor');
      const [doctor] = await Promise.all([context.waitForEvent('page'), link.click()]);
      await doctor.locator('[data-testid="doctor"]').waitFor({ timeout: 10000 });
      await settled(doctor);
      await doctor.getByTestId('doctor-ask-devices').click();
      await doctor.waitForFunction(
        () => document.querySelector('.doctor-check[data-check="devices"]')?.dataset.status === 'fail',
        null,
        { timeout: 20000 },
      );
      const row = await doctor.locator('.doctor-check[data-check="devices"]').textContent();
      assert.match(row, /Microphone blocked, camera blocked/);
      assert.match(row, /set both to Allow/);
    } finally {
      await strict.close();
    }
  });

  it('speaks Vietnamese', STEP, async () => {
    const vi = await doctorPage(server, 'vi-VN');
    const found = await settled(vi);
    await screenshot(vi, 'doctor-vi');
    assert.match(await vi.locator('h1').textContent(), /Kiểm tra kết nối/);
    assert.equal(found.udp.status, 'ok', found.udp.text);
    assert.match(found.udp.text, /Âm thanh và hình ảnh qua UDP \(trực tiếp\)/);
    assert.match(found.udp.text, /Độ trễ khứ hồi \d+ ms/);
    assert.match(found.secure.text, /Ổn/);
    assert.match(found.realtime.text, /Đã kết nối qua WebSocket/);
    assert.match(found.tcp.text, /chưa bật/);
    await vi.context().close();
  });
});

describe('the /doctor page on other servers', () => {
  it('measures ICE-TCP when the server offers it', STEP, async () => {
    const server = await startServer({ env: { TALKCONNECT__SFU__ICE_TCP: 'true' } });
    try {
      const page = await doctorPage(server);
      const found = await settled(page);
      console.log('doctor with ICE-TCP:', found.udp.rtt, found.tcp.status, found.tcp.text);
      assert.equal(found.udp.status, 'ok', found.udp.text);
      assert.equal(found.tcp.status, 'ok', found.tcp.text);
      assert.ok(Number.isFinite(found.tcp.rtt), `TCP round trip: ${found.tcp.rtt}`);
      await page.context().close();
    } finally {
      await server.stop();
    }
  });

  it('measures the TURN relay to the SFU', STEP, async () => {
    const turn = await startCoturn({ relayPorts: [47480, 47499] });
    const server = await startServer({ args: turn.configArgs });
    try {
      const page = await doctorPage(server);
      const found = await settled(page);
      console.log('doctor through TURN:', found.relay.status, found.relay.text);
      assert.equal(found.relay.status, 'ok', `${found.relay.text}\n${turn.log().slice(-2000)}`);
      assert.ok(Number.isFinite(found.relay.rtt), `relay round trip: ${found.relay.rtt}`);
      await page.context().close();
    } finally {
      await server.stop();
      await turn.stop();
    }
  });

  it('in mesh mode measures the relay between two local connections', STEP, async () => {
    const turn = await startCoturn({ relayPorts: [47480, 47499] });
    const server = await startServer({ env: { TALKCONNECT__MEDIA__MODE: 'mesh' }, args: turn.configArgs });
    try {
      const page = await doctorPage(server);
      const found = await settled(page);
      assert.equal(found.udp.status, 'skip');
      assert.equal(found.relay.status, 'ok', found.relay.text);
      assert.ok(Number.isFinite(found.relay.rtt), `relay round trip: ${found.relay.rtt}`);
      await page.context().close();
    } finally {
      await server.stop();
      await turn.stop();
    }
  });

  it('says the SFU paths do not apply in mesh mode', STEP, async () => {
    const server = await startServer({ env: { TALKCONNECT__MEDIA__MODE: 'mesh' } });
    try {
      const page = await doctorPage(server);
      const found = await settled(page);
      assert.equal(found.udp.status, 'skip');
      assert.match(found.udp.text, /mesh mode/);
      assert.equal(found.tcp.status, 'skip');
      assert.equal(found.relay.status, 'warn', found.relay.text);
      await page.context().close();
    } finally {
      await server.stop();
    }
  });
});
