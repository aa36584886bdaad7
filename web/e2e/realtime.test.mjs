// Browser tests of the live parts: lobby updates, joins, chat, hands/mics, kick, room end,
// and the reconnect banner across a server restart, against the binary's own Socket.IO server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createRoom, launchBrowser, realtimeAvailable, screenshot, signInAsGuest, startServer } from './harness.mjs';

const STEP = { timeout: 90000 };
const LIVE = { timeout: 5000 };

let server = await startServer();
if (!(await realtimeAvailable(server.url))) {
  await server.stop();
  throw new Error('the binary does not serve /socket.io/');
}
const appUrl = () => server.url;
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  return page;
}

const connected = (page, timeout = 15000) =>
  page.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, { timeout });

/** A server restart: the binary goes away and comes back on the same port and database. */
async function restartServer(duringDowntime) {
  const { dataDir, port } = server;
  await server.stop({ keepData: true });
  await duringDowntime();
  server = await startServer({ dataDir, port });
}

describe('live lobby and rooms over Socket.IO', () => {
  let host;
  let guest;
  let roomId;

  it('both browsers get the live connection', STEP, async () => {
    host = await newPage();
    guest = await newPage();
    await host.goto(appUrl());
    await guest.goto(appUrl());
    await signInAsGuest(host, 'Lan Host');
    await signInAsGuest(guest, 'Quân Guest');
    await connected(host);
    await connected(guest);
    assert.equal(await guest.getByTestId('connection-banner').count(), 0);
  });

  it('a new room appears in the other lobby without a reload', STEP, async () => {
    roomId = await createRoom(host, { title: 'Live English', topic: 'Movies' });
    const card = guest.locator(`.room-card[data-room-id="${roomId}"]`);
    await card.waitFor(LIVE);
    assert.ok((await card.textContent()).includes('1/6'));
    await screenshot(guest, 'live-lobby');
  });

  it('one click joins; the host sees the newcomer', STEP, async () => {
    await guest.getByRole('button', { name: 'Join Live English' }).click();
    await guest.locator('.tile', { hasText: 'Quân Guest' }).waitFor();
    await guest.locator('.tile', { hasText: 'Lan Host' }).waitFor();
    await host.locator('.tile', { hasText: 'Quân Guest' }).waitFor(LIVE);
  });

  it('chat goes both ways, live', STEP, async () => {
    await host.getByRole('textbox', { name: 'Message' }).fill('Welcome, Quân!');
    await host.keyboard.press('Enter');
    await guest.locator('.chat-message[data-own="false"]', { hasText: 'Welcome, Quân!' }).waitFor(LIVE);
    await guest.getByRole('textbox', { name: 'Message' }).fill('Cảm ơn Lan!');
    await guest.keyboard.press('Enter');
    await host.locator('.chat-message[data-own="false"]', { hasText: 'Cảm ơn Lan!' }).waitFor(LIVE);
    assert.equal(await host.locator('.chat-message', { hasText: 'Welcome, Quân!' }).count(), 1, 'no duplicate of own message');
  });

  it('raised hands and muted mics show for everyone', STEP, async () => {
    const guestId = await guest.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);
    await guest.getByRole('button', { name: 'Raise hand' }).click();
    await host.locator(`.tile.hand[data-user-id="${guestId}"]`).waitFor(LIVE);
    await host.getByRole('button', { name: 'Mute', exact: true }).click();
    await guest.locator('.person', { hasText: 'Lan Host' }).locator('[aria-label*="Microphone off"]').waitFor(LIVE);
    await host.getByRole('button', { name: 'Lower the hand of Quân Guest' }).click();
    await guest.getByRole('button', { name: 'Raise hand' }).waitFor(LIVE);
    await screenshot(host, 'live-room');
  });

  it('the host removes the guest: told, back in the lobby, seat freed live', STEP, async () => {
    await host.getByRole('button', { name: 'Actions for Quân Guest' }).click();
    await host.getByRole('menuitem', { name: 'Remove Quân Guest from the room' }).click();
    await host.getByRole('button', { name: 'Yes, remove' }).click();
    await guest.getByText('The host removed you from the room.').waitFor(LIVE);
    await guest.getByRole('heading', { name: /Live rooms/ }).waitFor();
    assert.equal(new URL(guest.url()).pathname, '/');
    const card = guest.locator(`.room-card[data-room-id="${roomId}"]`);
    await card.waitFor(LIVE);
    await guest.waitForFunction(
      (id) => document.querySelector(`.room-card[data-room-id="${id}"] .seats`)?.textContent === '1/6',
      roomId,
      LIVE,
    );
    assert.ok(await card.getByRole('button', { name: 'The host removed you from Live English' }).isDisabled());
    await host.locator('.tile', { hasText: 'Quân Guest' }).waitFor({ state: 'detached', ...LIVE });
    await screenshot(guest, 'live-kicked');
  });

  it('the last one to leave ends the room, and it leaves every lobby live', STEP, async () => {
    await host.getByRole('button', { name: 'Leave' }).click();
    await host.getByRole('heading', { name: /Live rooms/ }).waitFor();
    await guest.locator(`.room-card[data-room-id="${roomId}"]`).waitFor({ state: 'detached', ...LIVE });
  });

  it('reconnects after a server restart, shows it, and re-joins the room', STEP, async () => {
    const id = await createRoom(host, { title: 'After restart' });
    await guest.goto(`${appUrl()}/r/${id}`);
    await guest.locator('.tile', { hasText: 'Lan Host' }).waitFor();
    await connected(guest);
    await host.locator('.tile', { hasText: 'Quân Guest' }).waitFor(LIVE);

    await restartServer(async () => {
      await host.getByText('Connection lost. Reconnecting…').waitFor({ timeout: 10000 });
      await screenshot(host, 'reconnecting');
    });
    await connected(host, 30000);
    await connected(guest, 30000);
    await host.getByTestId('connection-banner').filter({ hasText: 'Reconnecting' }).waitFor({ state: 'detached' });
    assert.equal(new URL(host.url()).pathname, `/r/${id}`);

    await guest.getByRole('textbox', { name: 'Message' }).fill('Still here after the restart');
    await guest.keyboard.press('Enter');
    await host.locator('.chat-message', { hasText: 'Still here after the restart' }).waitFor(LIVE);
    await host.context().close();
    await guest.context().close();
  });
});
