// Moderation in the browser (docs/MODERATION.md), with the real binary, its SFU and Chromium:
// a host makes a co-host, who locks the room; a stranger (her page in Vietnamese) is refused,
// then comes in by the invite link; the co-host hard-mutes her: her microphone button is
// locked, and the others' getStats show her audio stopped while her video goes on; the host
// reports her, an admin sees the report on /admin and bans her, and her open page is thrown
// out at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  launchBrowser,
  remoteStats,
  screenshot,
  sfuEnv,
  signInAsGuest,
  startServer,
  userIdOf,
} from './harness.mjs';

const STEP = { timeout: 120000 };
const LIVE = { timeout: 10000 };
const MEDIA = { timeout: 30000 };

const server = await startServer({
  env: { ...sfuEnv(47100, 47199), TALKCONNECT__MODERATION__ADMINS: 'warden' },
});
let browser;

before(async () => {
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage({ locale = 'en-US', permissions = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale });
  if (permissions.length) await context.grantPermissions(permissions, { origin: server.url });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  return page;
}

const person = (page, id) => page.locator(`.person[data-user-id="${id}"]`);

/** Opens `id`'s menu in the people list of `page` and clicks the item `testid`. */
async function menu(page, id, testid) {
  await person(page, id).getByTestId('person-menu').click();
  await page.getByTestId(testid).click();
}

describe('moderation in the browser', () => {
  let an; // the host
  let binh; // made co-host
  let chi; // the stranger, in Vietnamese
  let ids;
  let roomId;
  let invite;

  it('a host makes a co-host, who locks the room and copies the invite link', STEP, async () => {
    an = await newPage();
    await an.goto(server.url);
    await signInAsGuest(an, 'An Nguyen');
    roomId = await createRoom(an, { title: 'Moderated room' });
    binh = await newPage({ permissions: ['clipboard-read', 'clipboard-write'] });
    await binh.goto(`${server.url}/r/${roomId}`);
    await signInAsGuest(binh, 'Bình Trần');
    await binh.locator('.room .room-name').waitFor(LIVE);
    ids = { an: await userIdOf(an), binh: await userIdOf(binh) };
    assert.equal(await binh.getByTestId('host-bar').count(), 0, 'a participant has no hosts bar');

    await menu(an, ids.binh, 'menu-make-cohost');
    await binh.getByTestId('host-bar').waitFor(LIVE);
    await an.locator(`.person[data-user-id="${ids.binh}"][data-role="COHOST"]`).waitFor(LIVE);

    await binh.getByTestId('lock-room').click();
    await binh.locator('[data-testid="lock-room"][data-locked="true"]').waitFor(LIVE);
    await an.getByTestId('room-locked-badge').waitFor(LIVE);
    await binh.getByTestId('copy-invite').click();
    await binh.getByTestId('copy-invite').filter({ hasText: /copied/i }).waitFor(LIVE);
    invite = await binh.evaluate(() => navigator.clipboard.readText());
    assert.match(invite, new RegExp(`/r/${roomId}\\?key=[A-Za-z0-9_-]{16}$`));
    await screenshot(binh, 'moderation-cohost-locked');
  });

  it('a stranger is refused, then joins by the invite link (in Vietnamese)', STEP, async () => {
    chi = await newPage({ locale: 'vi-VN' });
    await chi.goto(`${server.url}/r/${roomId}`);
    await signInAsGuest(chi, 'Chi Lê');
    const refused = chi.locator('[data-testid="room-unavailable"][data-code="ROOM_LOCKED"]');
    await refused.waitFor(LIVE);
    assert.match(await refused.innerText(), /Phòng này đã khóa/);
    await screenshot(chi, 'moderation-locked-vi');

    await chi.goto(invite);
    await chi.locator('.room .room-name').waitFor(LIVE);
    ids.chi = await userIdOf(chi);
    await person(an, ids.chi).waitFor(LIVE);
    await expectFlowing(an, [ids.chi], MEDIA);
  });

  it('the co-host hard-mutes her: her button is locked and her audio stops at the SFU', STEP, async () => {
    await menu(binh, ids.chi, 'menu-mute-mic');
    await chi.locator('[data-testid="toggle-mic"][data-locked="true"]').waitFor(LIVE);
    assert.equal(await chi.getByTestId('toggle-mic').isDisabled(), true, 'her unmute button is disabled');
    assert.match(await chi.getByTestId('mic-locked-line').innerText(), /Chủ phòng đã tắt tiếng bạn/);
    await an.locator(`.person[data-user-id="${ids.chi}"][data-mic-locked="true"]`).waitFor(LIVE);

    // In flight when the mute landed: let it arrive, then her audio must not grow while her
    // video does (the SFU stops only the microphone).
    await an.waitForTimeout(1000);
    const before = (await remoteStats(an))[ids.chi];
    await an.waitForTimeout(2000);
    const now = (await remoteStats(an))[ids.chi];
    console.log(`Chi at An after the hard mute: ${JSON.stringify({ before, now })}`);
    assert.equal(now.audioBytes, before.audioBytes, 'no audio from a hard-muted microphone');
    assert.ok(now.framesDecoded > before.framesDecoded, 'her video goes on');
    await screenshot(chi, 'moderation-hard-muted-vi');
  });

  it('a report is filed and an admin sees it, bans her, and her page is thrown out', STEP, async () => {
    await menu(an, ids.chi, 'menu-report');
    const dialog = an.getByTestId('report-dialog');
    await dialog.getByTestId('report-reason').selectOption('harassment');
    await dialog.getByTestId('report-message').fill('Shouting at everyone');
    await dialog.getByTestId('report-submit').click();
    await dialog.waitFor({ state: 'hidden', ...LIVE });

    // The admin: a registered account named in [moderation] admins.
    const registered = await fetch(`${server.url}/api/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'warden', email: 'warden@example.test', password: 'correct horse battery', displayName: 'Warden' }),
    });
    assert.equal(registered.status, 201);
    const session = await registered.json();
    const warden = await newPage();
    await warden.goto(server.url);
    await warden.evaluate((s) => localStorage.setItem('talkconnect.session', JSON.stringify(s)), session);
    await warden.goto(`${server.url}/admin`);
    await warden.getByTestId('admin-page').waitFor(LIVE);
    const report = warden.getByTestId('admin-reports').locator('tr', { hasText: 'Shouting at everyone' });
    await report.waitFor(LIVE);
    assert.match(await report.innerText(), /Chi Lê/);
    await screenshot(warden, 'moderation-admin-report');

    await report.getByTestId('admin-ban-reported').click();
    await chi.getByLabel(/Tên hiển thị/).first().waitFor(LIVE);
    assert.match(await chi.getByTestId('notice').innerText(), /bị cấm/);
    await person(an, ids.chi).waitFor({ state: 'detached', ...LIVE });
    await warden.getByTestId('admin-bans').locator(`tr[data-user-id="${ids.chi}"]`).waitFor(LIVE);
    await screenshot(chi, 'moderation-banned-vi');
  });
});
