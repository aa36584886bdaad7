// Browser tests that need only the REST API: they pass with or without the realtime server.
// The real binary, a fresh SQLite database, headless Chromium.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { apiAs, createRoom, launchBrowser, screenshot, signInAsGuest, startServer } from './harness.mjs';

const STEP = { timeout: 60000 };
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', ...options });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  return page;
}

describe('the binary serves the app', () => {
  it('serves index.html at / and at room links, assets cached long, API 404s stay JSON', STEP, async () => {
    const index = await fetch(`${server.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    assert.ok(html.includes('<div id="app">'), 'the built app is embedded, not the placeholder page');

    const deep = await fetch(`${server.url}/r/6f1c1f4e-3c1b-4b7e-9a55-0d7c4f0e2a10`);
    assert.equal(deep.status, 200);
    assert.equal(await deep.text(), html);

    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, 'index.html loads a hashed script');
    const asset = await fetch(`${server.url}${script}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('content-type'), /^text\/javascript/);
    assert.match(asset.headers.get('cache-control'), /max-age=31536000/);

    const api404 = await fetch(`${server.url}/api/no/such/thing`);
    assert.equal(api404.status, 404);
    assert.equal((await api404.json()).error.code, 'NOT_FOUND');
    const health = await fetch(`${server.url}/healthz`);
    assert.deepEqual(await health.json(), { status: 'ok' });
  });
});

describe('sign-in, rooms and chat (REST)', () => {
  let host;
  let guest;
  let roomId;
  let guestId;

  it('a guest picks a name and stays signed in across reloads', STEP, async () => {
    host = await newPage();
    await host.goto(server.url);
    await signInAsGuest(host, 'Hà Host');
    await host.reload();
    await host.locator('.whoami-name', { hasText: 'Hà Host' }).waitFor();
  });

  it('the host creates a room and lands in it as host', STEP, async () => {
    roomId = await createRoom(host, { title: 'Luyện nói tiếng Anh', topic: 'Du lịch' });
    const tile = host.locator('.tile', { hasText: 'Hà Host' });
    await tile.waitFor();
    assert.equal(await tile.locator('.avatar').textContent(), 'HH');
    assert.ok((await tile.textContent()).includes('host'));
    await screenshot(host, 'room-host');
  });

  it('the lobby lists the room with its details', STEP, async () => {
    guest = await newPage();
    await guest.goto(server.url);
    const card = guest.locator(`.room-card[data-room-id="${roomId}"]`);
    await card.waitFor();
    const text = await card.textContent();
    for (const part of ['Luyện nói tiếng Anh', 'Du lịch', 'English', 'Any level', '1/6', 'Hà Host']) {
      assert.ok(text.includes(part), `card shows ${part}: ${text}`);
    }
    await screenshot(guest, 'lobby');
  });

  it('filters and search narrow the list, ignoring accents', STEP, async () => {
    const card = guest.locator(`.room-card[data-room-id="${roomId}"]`);
    await guest.getByLabel('Search').fill('tieng anh');
    await guest.waitForTimeout(600);
    await card.waitFor();
    await guest.getByLabel('Search').fill('nothing like this');
    await guest.getByText('No rooms match your filters.').waitFor();
    await guest.getByRole('button', { name: 'Clear filters' }).click();
    await card.waitFor();
    await guest.getByRole('combobox', { name: 'Language' }).selectOption('vi');
    await guest.getByText('No rooms match your filters.').waitFor();
    await guest.getByRole('combobox', { name: 'Language' }).selectOption('');
    await guest.getByLabel('Has a free seat').check();
    await card.waitFor();
    await guest.getByLabel('Has a free seat').uncheck();
  });

  it('a shared link opens the room after picking a name', STEP, async () => {
    await guest.goto(`${server.url}/r/${roomId}`);
    await guest.getByText('Pick a name to join this room.').waitFor();
    await signInAsGuest(guest, 'Minh Guest');
    await guest.locator('.tile', { hasText: 'Minh Guest' }).waitFor();
    await guest.locator('.tile', { hasText: 'Hà Host' }).waitFor();
    guestId = await guest.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);
  });

  it('chat: history on entry, own messages marked, markup shown as text', STEP, async () => {
    await host.getByRole('textbox', { name: 'Message' }).fill('Hello <b>everyone</b> https://example.com');
    await host.keyboard.press('Enter');
    const own = host.locator('.chat-message[data-own="true"]', { hasText: 'Hello <b>everyone</b>' });
    await own.waitFor();
    assert.ok((await own.textContent()).includes('You'));

    await guest.reload();
    const seen = guest.locator('.chat-message', { hasText: 'Hello <b>everyone</b>' });
    await seen.waitFor();
    assert.equal(await seen.getAttribute('data-own'), 'false');
    assert.equal(await guest.locator('.chat-text b, .chat-text a').count(), 0);

    await guest.getByRole('textbox', { name: 'Message' }).fill('Chào cả nhà!');
    await guest.getByRole('button', { name: 'Send' }).click();
    await guest.locator('.chat-message[data-own="true"]', { hasText: 'Chào cả nhà!' }).waitFor();
    // The host gets it live over the socket, or from the REST re-sync while it is down.
    await host.locator('.chat-message', { hasText: 'Chào cả nhà!' }).waitFor({ timeout: 15000 });
  });

  it('older messages load on demand', STEP, async () => {
    for (let i = 1; i <= 35; i++) {
      const res = await apiAs(host, 'POST', `/api/rooms/${roomId}/chat`, { message: `numbered ${i}` });
      assert.equal(res.status, 201);
    }
    await guest.reload();
    await guest.locator('.chat-message', { hasText: 'numbered 35' }).waitFor();
    assert.equal(await guest.locator('.chat-message', { hasText: 'Hello <b>everyone</b>' }).count(), 0);
    // The button, clicked where it is: a real click would first scroll it into view, and
    // scrolling to the top loads older messages by itself (checked below), so the button
    // could be gone before the click lands.
    await guest.getByRole('button', { name: 'Load older messages' }).dispatchEvent('click');
    await guest.locator('.chat-message', { hasText: 'Hello <b>everyone</b>' }).waitFor();
    assert.equal(await guest.locator('.chat-message', { hasText: /^.*numbered 1$/ }).count(), 1);
    assert.equal(await guest.getByRole('button', { name: 'Load older messages' }).count(), 0, 'nothing older is left');

    // Scrolling up to the top of the chat loads the next older page.
    for (let i = 1; i <= 35; i++) {
      const res = await apiAs(host, 'POST', `/api/rooms/${roomId}/chat`, { message: `second batch ${i}` });
      assert.equal(res.status, 201);
    }
    await guest.reload();
    await guest.locator('.chat-message', { hasText: 'second batch 35' }).waitFor();
    assert.equal(await guest.locator('.chat-message', { hasText: /second batch 1$/ }).count(), 0);
    await guest.locator('.chat-log').evaluate((el) => {
      el.scrollTop = 0;
    });
    await guest.locator('.chat-message', { hasText: /second batch 1$/ }).waitFor();
  });

  it('full, kicked and ended rooms say so plainly', STEP, async () => {
    const created = await apiAs(host, 'POST', '/api/rooms', { title: 'Two seats', maxParticipants: 2 });
    assert.equal(created.status, 201);
    const small = created.body.id;
    assert.equal((await apiAs(guest, 'POST', `/api/rooms/${small}/join`)).status, 200);

    const third = await newPage();
    await third.goto(`${server.url}/r/${small}`);
    await signInAsGuest(third, 'Third');
    await third.getByText('This room is full.').waitFor();

    assert.equal((await apiAs(host, 'POST', `/api/rooms/${small}/kick/${guestId}`)).status, 200);
    await guest.goto(`${server.url}/r/${small}`);
    await guest.getByText('You were removed from this room and cannot come back.').waitFor();
    await screenshot(guest, 'room-kicked');

    assert.equal((await apiAs(host, 'DELETE', `/api/rooms/${small}`)).status, 200);
    await third.goto(`${server.url}/r/${small}`);
    await third.getByText('This room has ended.').waitFor();
    await third.getByRole('button', { name: 'Back to the lobby' }).click();
    await third.getByRole('heading', { name: /Live rooms/ }).waitFor();
    await third.context().close();
  });

  it('the last one to leave ends the room, and the lobby drops it', STEP, async () => {
    await guest.goto(`${server.url}/r/${roomId}`);
    await guest.locator('.tile', { hasText: 'Minh Guest' }).waitFor();
    await guest.getByRole('button', { name: 'Leave' }).click();
    await guest.getByRole('heading', { name: /Live rooms/ }).waitFor();
    await host.getByRole('button', { name: 'Leave' }).click();
    await host.getByRole('heading', { name: /Live rooms/ }).waitFor();
    const detail = await apiAs(host, 'GET', `/api/rooms/${roomId}`);
    assert.equal(detail.body.status, 'ENDED');
    await guest.reload();
    await guest.getByText('No live rooms right now.').waitFor();
    assert.equal(await guest.locator(`.room-card[data-room-id="${roomId}"]`).count(), 0);
  });

  it('a refused token signs out cleanly', STEP, async () => {
    await guest.evaluate(() => {
      const s = JSON.parse(localStorage.getItem('talkconnect.session'));
      s.token = 'not-a-valid-token';
      localStorage.setItem('talkconnect.session', JSON.stringify(s));
    });
    await guest.reload();
    await guest.getByText('Your session has expired. Please sign in again.').waitFor();
    await guest.getByRole('button', { name: 'Continue as guest' }).waitFor();
    assert.equal(await guest.evaluate(() => localStorage.getItem('talkconnect.session')), null);
    await host.context().close();
    await guest.context().close();
  });
});

describe('languages and small screens', () => {
  it('switches to Vietnamese and remembers it', STEP, async () => {
    const page = await newPage();
    await page.goto(server.url);
    await page.getByRole('heading', { name: /Live rooms/ }).waitFor();
    await page.getByRole('button', { name: 'Tiếng Việt' }).click();
    await page.getByRole('heading', { name: /Phòng đang mở/ }).waitFor();
    await page.getByRole('button', { name: 'Vào với tư cách khách' }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'vi');
    await page.reload();
    await page.getByRole('heading', { name: /Phòng đang mở/ }).waitFor();
    await screenshot(page, 'lobby-vi');
    await page.context().close();
  });

  it('speaks Vietnamese to a Vietnamese browser', STEP, async () => {
    const page = await newPage({ locale: 'vi-VN' });
    await page.goto(server.url);
    await page.getByRole('heading', { name: /Phòng đang mở/ }).waitFor();
    await page.context().close();
  });

  it('fits a phone screen: lobby and room', STEP, async () => {
    const page = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await page.goto(server.url);
    await signInAsGuest(page, 'Phone Person');
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok((await overflow()) <= 0, 'no sideways scrolling in the lobby');
    await screenshot(page, 'lobby-phone');
    await createRoom(page, { title: 'Small screen room', topic: 'Mobile' });
    assert.ok((await overflow()) <= 0, 'no sideways scrolling in the room');
    const leave = page.getByRole('button', { name: 'Leave' });
    const box = await leave.boundingBox();
    assert.ok(box && box.y + box.height <= 844 && box.x >= 0 && box.x + box.width <= 390, 'controls on screen');
    await screenshot(page, 'room-phone');
    await leave.click();
    await page.context().close();
  });
});
