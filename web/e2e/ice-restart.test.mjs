// A network switch mid-call, with real Chromium pages in network namespaces (root only;
// iproute2 and nftables; machinery in namespaces.mjs):
//
//   tcn-ice-srv 203.0.113.10 ── 203.0.113.1 tcn-ice-rtr ─┬─ 192.168.77.1 ── 192.168.77.10 tcn-ice-mai
//   (the binary, plain HTTP; the page is      (router,    ├─ 192.168.79.1 ── 192.168.79.10  "  (2nd switch)
//    a secure context by Chromium's flag)      NAT)       ├─ 192.168.80.1 ── 192.168.80.10  "  (3rd switch)
//                                                         └─ 192.168.78.1 ── 192.168.78.10 tcn-ice-binh
//
// Mai's page moves to another network twice: a new veth on another subnet through the router
// comes up and becomes her default route, and the old address stops carrying UDP (nftables in
// her namespace drops UDP from and to it). In the first two runs the old address keeps
// carrying the page's TCP websocket, so signaling lives through the switch. In the third the
// old address carries nothing more, the websocket included, as when a phone leaves a Wi-Fi:
// the page finds its socket dead (`conn:ping` unanswered after its connection broke, or after
// the `online` event), connects again from the new address, and takes its SFU session back
// (`sfu:resume`), which the server kept when the old socket vanished.
// The first switch is left for the connections to notice (the server offers the restart when
// its side goes `disconnected`); at the second the page hears of it (an `online` event, as
// the browser fires when the OS reports a network) and restarts ICE itself. Asserted, for
// each switch:
// - media resumes both ways (frames decoded and audio bytes grow again on both pages);
// - through an ICE restart: Mai's local ICE ufrag changed, and the selected candidate pair's
//   local side is her new address;
// - the seat is never released: Bình's page still shows Mai, the room (REST) still lists both,
//   no `room:user-left` reached Bình's page, and the SFU removed nobody (its log);
// - with the websocket broken too: Mai's page opened a new websocket and resumed its session
//   at each switch, on the same peer connection; Bình's page held Mai's tile, with the same
//   video track, at every sample (every 100 ms) from before the first switch to the end.
// The same again with the SFU on a single UDP port (the demultiplexer must route the new
// ufrag and the new address). The time from each switch to Mai's video decoding again on
// Bình's page is logged, not asserted. Every namespace (tcn-ice-*) is removed at the end, and first thing, leftovers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { tempDir } from '../../e2e/support/server.mjs';
import {
  MEDIA_ARGS,
  apiAs,
  createRoom,
  expectFlowing,
  launchBrowser,
  remoteStats,
  screenshot,
  signInAsGuest,
  startServer,
  userIdOf,
} from './harness.mjs';
import { addNamespace, chromiumIn, inNs, link, nft, removeNamespaces } from './namespaces.mjs';

const STEP = { timeout: 240000 };
const LIVE = { timeout: 10000 };
const MEDIA = { timeout: 45000 };
const PREFIX = 'tcn-ice-';
const NS = { server: 'tcn-ice-srv', router: 'tcn-ice-rtr', mai: 'tcn-ice-mai', binh: 'tcn-ice-binh' };
const SERVER_IP = '203.0.113.10';
const SITE = `http://${SERVER_IP}/`;
/** Mai's networks, one after the other: [subnet prefix, veth in her namespace, router's end]. */
const NETWORKS = [
  ['192.168.77', 'tcn-ice-m0', 'tcn-ice-r0'],
  ['192.168.79', 'tcn-ice-m1', 'tcn-ice-r1'],
  ['192.168.80', 'tcn-ice-m2', 'tcn-ice-r2'],
];
const SKIP = process.getuid?.() === 0 ? false : 'network namespaces need root';

function buildTopology() {
  for (const ns of Object.values(NS)) addNamespace(ns);
  link(NS.server, 'tcn-ice-s', `${SERVER_IP}/24`, NS.router, 'tcn-ice-rs', '203.0.113.1/24');
  link(NS.binh, 'tcn-ice-b', '192.168.78.10/24', NS.router, 'tcn-ice-rb', '192.168.78.1/24');
  inNs(NS.binh, 'ip', 'route', 'add', 'default', 'via', '192.168.78.1');
  joinNetwork(0);
  inNs(NS.router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward');
  // Both homes behind the router's NAT: the server sees only 203.0.113.1.
  nft(
    NS.router,
    `table ip tcn_ice_nat {
      chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "tcn-ice-rs" masquerade
      }
    }`,
  );
}

/** Mai's namespace gets network `n` (a veth to the router) as its default route; a counter
 * sees the UDP that leaves from its address. */
function joinNetwork(n) {
  const [subnet, veth, routerEnd] = NETWORKS[n];
  link(NS.mai, veth, `${subnet}.10/24`, NS.router, routerEnd, `${subnet}.1/24`);
  inNs(NS.mai, 'ip', 'route', 'replace', 'default', 'via', `${subnet}.1`);
  nft(NS.mai, counterTable(n));
}

const counterTable = (n) => `table inet tcn_ice_net_${n} {
  counter udp_out {}
  chain output {
    type filter hook output priority filter - 1; policy accept;
    ip saddr ${NETWORKS[n][0]}.10 meta l4proto udp counter name "udp_out"
  }
}`;

/** UDP packets Mai's page sent from network `n`'s address. */
function udpSentFrom(n) {
  const out = inNs(NS.mai, 'nft', 'list', 'counter', 'inet', `tcn_ice_net_${n}`, 'udp_out');
  const match = /packets (\d+)/.exec(out);
  assert.ok(match, `no packet count in: ${out}`);
  return Number(match[1]);
}

/** Network `n` carries no more UDP for Mai (the media path of the old network is gone), or,
 * `everything`, nothing at all: her websocket's TCP connection too. */
function loseNetwork(n, everything) {
  const address = `${NETWORKS[n][0]}.10`;
  const what = everything ? '' : ' meta l4proto udp';
  nft(
    NS.mai,
    `table inet tcn_ice_gone_${n} {
      chain output {
        type filter hook output priority filter; policy accept;
        ip saddr ${address}${what} drop
      }
      chain input {
        type filter hook input priority filter; policy accept;
        ip daddr ${address}${what} drop
      }
    }`,
  );
}

const dir = tempDir('tc-ice-restart-');
const browsers = {};

/** The binary in the server's namespace, plain HTTP on port 80; `env` adds SFU settings. */
const serve = (env = {}) =>
  startServer({
    netns: NS.server,
    port: 80,
    env: {
      TALKCONNECT__SERVER__HOST: SERVER_IP,
      TALKCONNECT__SFU__BIND_IP: SERVER_IP,
      TALKCONNECT__SFU__ALLOW_LOOPBACK: 'false',
      TALKCONNECT__SFU__UDP_PORT_MIN: '40000',
      TALKCONNECT__SFU__UDP_PORT_MAX: '40019',
      ...env,
    },
  });

before(async () => {
  if (SKIP) return;
  removeNamespaces(PREFIX);
  buildTopology();
  // getUserMedia wants a secure context; the test serves plain HTTP.
  const secure = `--unsafely-treat-insecure-origin-as-secure=http://${SERVER_IP}`;
  for (const who of ['mai', 'binh']) {
    browsers[who] = await launchBrowser({ executablePath: chromiumIn(NS[who], dir), extraArgs: [...MEDIA_ARGS, secure] });
  }
});

after(async () => {
  if (SKIP) return;
  for (const browser of Object.values(browsers)) await browser.close().catch(() => {});
  removeNamespaces(PREFIX);
});

async function person(who, name) {
  const context = await browsers[who].newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error ${who}] ${err.message}`));
  const userLeft = [];
  const sockets = [];
  page.on('websocket', (ws) => {
    sockets.push(ws.url());
    ws.on('framereceived', (frame) => {
      if (String(frame.payload).includes('room:user-left')) userLeft.push(String(frame.payload));
    });
  });
  return { page, name, userLeft, sockets };
}

/** The local ICE ufrag and the selected pair's local candidate of the page's SFU connection. */
const iceState = (page) =>
  page.evaluate(async () => {
    const pc = window.__talkconnect.pc;
    const ufrag = /^a=ice-ufrag:(.+)$/m.exec(pc.localDescription?.sdp ?? '')?.[1]?.trim() ?? null;
    const stats = await pc.getStats();
    let local = null;
    let remotePort = null;
    stats.forEach((r) => {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
      const pair = stats.get(r.selectedCandidatePairId);
      const candidate = stats.get(pair.localCandidateId);
      local = { type: candidate.candidateType, address: candidate.address, port: candidate.port };
      remotePort = stats.get(pair.remoteCandidateId).port;
    });
    const t = window.__talkconnect;
    return { ufrag, local, remotePort, restarts: t.restarts, resumes: t.resumes, phase: t.phase };
  });

const framesFrom = async (page, id) => (await remoteStats(page))[id]?.framesDecoded ?? 0;

/** Waits until `page` decodes 30 more frames of `id` than when the switch froze them; answers
 * the milliseconds since `switchedAt` (a figure for the report). */
async function resumed(page, id, switchedAt) {
  // The last frames of the old path may still be in flight: take the count once it stalls.
  let frozen = await framesFrom(page, id);
  for (let i = 0; i < 8; i++) {
    await page.waitForTimeout(250);
    const now = await framesFrom(page, id);
    if (now === frozen) break;
    frozen = now;
  }
  const deadline = Date.now() + MEDIA.timeout;
  while (Date.now() < deadline) {
    if ((await framesFrom(page, id)) > frozen + 30) return Date.now() - switchedAt;
    await page.waitForTimeout(100);
  }
  assert.fail(`video of ${id} did not resume after the switch (${frozen} frames)`);
}

async function participantIds(page, roomId) {
  const { status, body } = await apiAs(page, 'GET', `/api/rooms/${roomId}`);
  assert.equal(status, 200, JSON.stringify(body));
  return (body.participants ?? body.room?.participants ?? []).map((p) => p.userId).sort();
}

/** Mai's namespace back on its first network only (the state buildTopology left). */
function backToFirstNetwork() {
  for (let n = 1; n < NETWORKS.length; n++) {
    try {
      inNs(NS.mai, 'ip', 'link', 'del', NETWORKS[n][1]);
    } catch {
      // Never joined.
    }
  }
  for (let n = 0; n < NETWORKS.length; n++) {
    for (const table of [`tcn_ice_gone_${n}`, `tcn_ice_net_${n}`]) {
      try {
        inNs(NS.mai, 'nft', 'delete', 'table', 'inet', table);
      } catch {
        // Not made.
      }
    }
  }
  inNs(NS.mai, 'ip', 'route', 'replace', 'default', 'via', `${NETWORKS[0][0]}.1`);
  nft(NS.mai, counterTable(0));
}

/** Samples, every 100 ms, whether `page` shows `userId`'s tile with video and which track
 * feeds it; `tileWatch(page)` reads what it saw. */
const watchTile = (page, userId) =>
  page.evaluate((id) => {
    const seen = { samples: 0, missing: 0, tracks: [] };
    window.__tileWatch = seen;
    setInterval(() => {
      seen.samples++;
      const video = window.__talkconnect.remote[id]?.video ?? null;
      const tile = document.querySelector(`.tile[data-user-id="${id}"][data-video="on"] video`);
      if (!video || !tile) seen.missing++;
      if (video && !seen.tracks.includes(video)) seen.tracks.push(video);
    }, 100);
  }, userId);
const tileWatch = (page) => page.evaluate(() => window.__tileWatch);

/** `sfuPort`: the single UDP port every pair must end on (single-port mode). `socketToo`: the
 * switch breaks Mai's websocket too. */
async function switchTwice(server, mode, sfuPort, socketToo = false) {
  const mai = await person('mai', 'Mai on the move');
  const binh = await person('binh', 'Bình at home');
  await mai.page.goto(SITE);
  await signInAsGuest(mai.page, mai.name);
  const roomId = await createRoom(mai.page, { title: 'On the move' });
  await binh.page.goto(`${SITE}r/${roomId}`);
  await signInAsGuest(binh.page, binh.name);
  await binh.page.locator('.room .room-name').waitFor(LIVE);
  const ids = { mai: await userIdOf(mai.page), binh: await userIdOf(binh.page) };
  await binh.page.locator(`.tile[data-user-id="${ids.mai}"][data-video="on"] video`).waitFor(MEDIA);
  await expectFlowing(binh.page, [ids.mai], { timeout: MEDIA.timeout });
  await expectFlowing(mai.page, [ids.binh], { timeout: MEDIA.timeout });
  const everyone = await participantIds(binh.page, roomId);
  assert.deepEqual(everyone, [ids.mai, ids.binh].sort());

  let previous = await iceState(mai.page);
  console.log(`[ice] before: ${JSON.stringify(previous)}`);
  assert.ok(udpSentFrom(0) > 0, 'the media left from the first network');
  await watchTile(binh.page, ids.mai);
  await mai.page.evaluate(() => (window.__firstPc = window.__talkconnect.pc));
  for (let n = 1; n < NETWORKS.length; n++) {
    const socketsBefore = mai.sockets.length;
    joinNetwork(n);
    loseNetwork(n - 1, socketToo);
    const switchedAt = Date.now();
    const told = n === 2;
    if (told) await mai.page.evaluate(() => window.dispatchEvent(new Event('online')));
    const ms = await resumed(binh.page, ids.mai, switchedAt);
    await expectFlowing(binh.page, [ids.mai], { timeout: MEDIA.timeout });
    await expectFlowing(mai.page, [ids.binh], { timeout: MEDIA.timeout });
    const now = await iceState(mai.page);
    console.log(`[ice] ${mode}, switch ${n}: Mai's video decoded again on Bình's page ${ms} ms after the switch; ${JSON.stringify(now)}`);
    assert.notEqual(now.ufrag, previous.ufrag, 'an ICE restart: new local credentials');
    // A new pair: the NAT maps the new address to a new port (the local candidate is the
    // peer-reflexive one the server's answers named), and the media leaves from there.
    assert.notDeepEqual(now.local, previous.local, JSON.stringify(now));
    const sent = udpSentFrom(n);
    await mai.page.waitForTimeout(1000);
    assert.ok(udpSentFrom(n) > sent, 'the media leaves from the new address');
    assert.equal(now.phase, 'connected');
    if (sfuPort) assert.equal(now.remotePort, sfuPort, 'still through the single port');
    if (told && !socketToo) assert.ok(now.restarts > previous.restarts, 'the page restarted ICE itself');
    if (socketToo) {
      assert.ok(mai.sockets.length > socketsBefore, 'a new websocket, from the new network');
      assert.ok(now.resumes > (previous.resumes ?? 0), 'the session was taken over by the new socket');
      const samePc = await mai.page.evaluate(() => window.__talkconnect.pc === window.__firstPc);
      assert.ok(samePc, 'the same peer connection: no new session');
    }
    previous = now;
  }
  const watched = await tileWatch(binh.page);
  console.log(`[ice] ${mode}: Bình's view of Mai's tile: ${JSON.stringify(watched)}`);
  assert.ok(watched.samples > 50, JSON.stringify(watched));
  assert.equal(watched.missing, 0, "Bình's page never lost Mai's tile or its video");
  assert.equal(watched.tracks.length, 1, 'the same video track throughout');

  // The seat was never released.
  await binh.page.locator(`.tile[data-user-id="${ids.mai}"]`).waitFor({ state: 'attached', timeout: 1000 });
  assert.deepEqual(await participantIds(binh.page, roomId), everyone);
  assert.deepEqual(binh.userLeft, [], 'Bình heard of nobody leaving');
  const log = server.log();
  assert.doesNotMatch(log, /sfu: participant removed/, 'the SFU removed nobody');
  console.log(`[ice] server: ${log.split('\n').filter((l) => /ICE restart|connection (broke|restored)/.test(l)).length} restart lines`);
  for (const line of log.split('\n').filter((l) => /ICE restart|connection (broke|restored)/.test(l))) console.log(`[ice]   ${line.slice(0, 200)}`);
  await screenshot(binh.page, `ice-restart-${mode}`);
  await mai.page.context().close();
  await binh.page.context().close();
}

describe('a network switch mid-call', { skip: SKIP }, () => {
  it('ICE restarts, media resumes both ways, and the seat is never released', STEP, async () => {
    const server = await serve();
    try {
      await switchTwice(server, 'port range');
    } finally {
      await server.stop();
    }
  });

  it('the same through the single UDP port', STEP, async () => {
    backToFirstNetwork();
    const server = await serve({ TALKCONNECT__SFU__SINGLE_UDP_PORT: '3478' });
    try {
      await switchTwice(server, 'single port', 3478);
    } finally {
      await server.stop();
    }
  });

  it('with the websocket lost too, a new socket resumes the session and the tile never goes', STEP, async () => {
    backToFirstNetwork();
    const server = await serve();
    try {
      await switchTwice(server, 'socket lost', undefined, true);
      assert.match(server.log(), /session resumed on a new socket/);
    } finally {
      await server.stop();
    }
  });
});
