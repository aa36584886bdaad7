// A rolling restart nobody notices: two replicas of the binary on one PostgreSQL database and
// one Redis, behind nginx with the shipped deploy/nginx.conf, and a live room with three
// browsers sending audio and video. Each replica in turn gets SIGTERM (it drains: its media
// rooms move, its sockets reconnect through nginx to the other replica) and is started again.
// Nobody loses a seat, chat goes on, and every browser decodes the others' video again; the
// time from SIGTERM until then is printed for docs/OPERATIONS.md (never asserted).
//
// The browsers come from one address, and nginx's ip_hash sends one address to one replica.
// Two nginx sites list the replicas in opposite orders, so the same address lands on a
// different replica through each: two browsers on one replica, one on the other.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startNginx } from '../../e2e/cluster/harness.mjs';
import { freePort } from '../../e2e/support/server.mjs';
import {
  MEDIA_ARGS,
  apiAs,
  createRoom,
  expectFlowing,
  guestPage,
  launchBrowser,
  remoteStats,
  screenshot,
  sharedServices,
  startServer,
  userIdOf as userId,
} from './harness.mjs';

const STEP = { timeout: 300000 };
const services = sharedServices('rolling', { needs: ['nginx'] });
const { skip } = services;
const running = [];
const proxies = [];
let browser;

/** A replica on `port` (the same one again after a restart: nginx names it). */
async function replica(name, port) {
  const env = { ...services.env(name), TALKCONNECT__SERVER__TRUSTED_PROXIES: '127.0.0.1' };
  const server = await startServer({ env, port });
  running.push(server);
  return { name, server };
}

before(async () => {
  if (skip) return;
  services.create();
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
});

after(async () => {
  await browser?.close();
  for (const p of proxies) await p.stop();
  for (const r of running) await r.stop();
  if (!skip) services.drop();
});

async function enter(url, name, roomId) {
  const page = await guestPage(browser, url, name, roomId);
  // The media store's own account of its sessions, for the report.
  page.on('console', (msg) => msg.text().startsWith('[media]') && console.log(`${name} ${new Date().toISOString()}: ${msg.text()}`));
  return page;
}

/** Milliseconds from `since` until two samples 300 ms apart show every publisher's video
 * frames rising on `page` (its media is flowing again), up to `timeout`. */
async function decodingAgain(page, publishers, since, timeout = 60000) {
  let before = await remoteStats(page);
  const seen = [];
  while (Date.now() - since < timeout) {
    await page.waitForTimeout(300);
    const now = await remoteStats(page);
    const state = await page.evaluate(() => `${document.documentElement.dataset.realtime}/${window.__talkconnect?.pc?.connectionState ?? "-"}`);
    if (seen.at(-1)?.state !== state) seen.push({ at: Date.now() - since, state });
    const rising = publishers.every((id) => before[id]?.framesDecoded > 0 && now[id]?.framesDecoded > before[id].framesDecoded);
    if (rising) {
      console.log(`states until video: ${JSON.stringify(seen)}`);
      return Date.now() - since;
    }
    before = now;
  }
  assert.fail(`video from ${publishers.join(', ')} not decoded again within ${timeout} ms: ${JSON.stringify(before)}`);
}

async function waitReady(server) {
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${server.url}/readyz`).catch(() => null))?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${server.url} not ready`);
}

/** The room as the database has it: LIVE with exactly these seats. */
async function expectSeats(page, roomId, ids) {
  const { status, body } = await apiAs(page, 'GET', `/api/rooms/${roomId}`);
  assert.equal(status, 200);
  assert.equal(body.status, 'LIVE', 'the room never ended');
  assert.deepEqual(body.participants.map((p) => p.userId).sort(), [...ids].sort(), 'nobody lost a seat');
}

async function chatGoesOn(from, to, text) {
  await from.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, { timeout: 30000 });
  await from.getByRole('textbox', { name: 'Message' }).fill(text);
  await from.keyboard.press('Enter');
  await to.locator('.chat-message', { hasText: text }).waitFor({ timeout: 30000 });
}

const owner = services.mediaOwner;

describe('a rolling restart behind nginx', { skip }, () => {
  it('each replica in turn drains and comes back: seats, chat and media go on', STEP, async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    let a = await replica('roll-a', portA);
    let b = await replica('roll-b', portB);
    const first = await startNginx([a.server, b.server]);
    const second = await startNginx([b.server, a.server]);
    proxies.push(first, second);

    const host = await enter(first.url, 'Host');
    const roomId = await createRoom(host, { title: 'Rolling restart' });
    const guest = await enter(first.url, 'Guest', roomId);
    const other = await enter(second.url, 'Other side', roomId);
    const pages = { host, guest, other };
    const ids = Object.fromEntries(await Promise.all(Object.entries(pages).map(async ([k, p]) => [k, await userId(p)])));
    const othersOf = (who) => Object.keys(pages).filter((k) => k !== who).map((k) => ids[k]);
    for (const [who, page] of Object.entries(pages)) await expectFlowing(page, othersOf(who));
    await expectSeats(host, roomId, Object.values(ids));
    await chatGoesOn(other, host, 'Before the restarts');
    await screenshot(other, 'rolling-before');

    const figures = [];
    // The replica that serves the room's media first (the harder case), then the other.
    const order = owner(roomId).startsWith('roll-a#') ? ['a', 'b'] : ['b', 'a'];
    assert.match(owner(roomId), /^roll-[ab]#/);
    for (const which of order) {
      const stopping = which === 'a' ? a : b;
      const since = Date.now();
      await stopping.server.stop({ keepData: true });
      running.splice(running.indexOf(stopping.server), 1);
      const stopped = Date.now() - since;
      const back = {};
      await Promise.all(
        Object.entries(pages).map(async ([who, page]) => {
          back[who] = await decodingAgain(page, othersOf(who), since);
        }),
      );
      figures.push({ stopped: stopping.name, drainMs: stopped, videoBackMs: back });
      await expectSeats(host, roomId, Object.values(ids));
      assert.doesNotMatch(owner(roomId), new RegExp(`^${stopping.name}#`), 'the room media moved off the stopped replica');
      await chatGoesOn(guest, other, `While ${stopping.name} is away`);
      await chatGoesOn(other, host, `Answer while ${stopping.name} is away`);
      // Started again on the same port, then, as an operator does, the next replica waits
      // until this one is ready and longer than nginx's fail_timeout (deploy/nginx.conf):
      // until then nginx still counts it as failed.
      const restarted = await replica(stopping.name, stopping.server.port);
      await waitReady(restarted.server);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      if (which === 'a') a = restarted;
      else b = restarted;
    }
    console.log(`rolling restart figures: ${JSON.stringify(figures)}`);
    for (const [who, page] of Object.entries(pages)) await expectFlowing(page, othersOf(who));
    await expectSeats(host, roomId, Object.values(ids));
    await chatGoesOn(host, other, 'After both restarts');
    await screenshot(host, 'rolling-after');
  });
});
