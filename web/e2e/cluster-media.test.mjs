// Audio and video across replicas: two replicas of the binary on one PostgreSQL database and
// one Redis, browsers on both. The room's SFU lives on the replica that claimed it first; a
// browser whose socket is on the other replica still gets its media from there. When that
// replica is killed, the browsers left reconnect their media to the replica that takes the
// room over. Audio-only (`sfu:prefs`) from a browser on the other replica reaches the SFU.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  guestPage,
  launchBrowser,
  screenshot,
  sfuEnv,
  sharedServices,
  startServer,
  userIdOf as userId,
} from './harness.mjs';

const STEP = { timeout: 180000 };
const services = sharedServices('media');
const { skip } = services;
const replicas = [];
let browser;

function replicaEnv(name, portMin) {
  return {
    ...services.env(name),
    TALKCONNECT__CLUSTER__MEDIA_LEASE_SECS: '3',
    TALKCONNECT__CLUSTER__PRESENCE_TTL_SECS: '3',
    ...sfuEnv(portMin, portMin + 49),
  };
}

before(async () => {
  if (skip) return;
  services.create();
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
});

after(async () => {
  await browser?.close();
  for (const r of replicas) await r.stop();
  if (!skip) services.drop();
});

const enter = (server, name, roomId) => guestPage(browser, server.url, name, roomId);

describe('media across replicas', { skip }, () => {
  it('browsers on two replicas see each other through the room SFU, which moves when its replica dies', STEP, async () => {
    const a = await startServer({ env: replicaEnv('media-a', 47400) });
    replicas.push(a);
    const b = await startServer({ env: replicaEnv('media-b', 47450) });
    replicas.push(b);

    // The host opens the room on A: A's SFU owns it.
    const host = await enter(a, 'Host on A');
    const roomId = await createRoom(host, { title: 'Across replicas' });
    const first = await enter(b, 'First on B', roomId);
    const second = await enter(b, 'Second on B', roomId);
    const ids = { host: await userId(host), first: await userId(first), second: await userId(second) };

    const owner = services.mediaOwner(roomId);
    assert.match(owner, /^media-a#/, 'the replica that started the room serves its media');
    await expectFlowing(first, [ids.host, ids.second]);
    await expectFlowing(host, [ids.first, ids.second]);
    await screenshot(first, 'cluster-media-two-replicas');

    // Audio-only from a socket on B: relayed to A's SFU, which stops sending it video.
    await first.getByTestId('toggle-audio-only').click();
    // Bytes, not frames: a decoder with no video element to feed might stand still anyway.
    const bytesFromHost = () =>
      first.evaluate(async (host) => {
        const tc = window.__talkconnect;
        const out = { audio: 0, video: 0 };
        (await tc.pc.getStats()).forEach((r) => {
          if (r.type !== 'inbound-rtp') return;
          if (r.trackIdentifier === tc.remote[host]?.audio) out.audio = r.bytesReceived;
          if (r.trackIdentifier === tc.remote[host]?.video) out.video = r.bytesReceived;
        });
        return out;
      }, ids.host);
    const fromHost = async (cond) => {
      for (let i = 0; i < 60; i++) {
        const s = await bytesFromHost();
        if (cond(s)) return s;
        await first.waitForTimeout(1000);
      }
      assert.fail('audio from the host stopped');
    };
    const s0 = await bytesFromHost();
    const settled = await fromHost((s) => s.audio > s0.audio + 20000);
    const s2 = await fromHost((s) => s.audio > settled.audio + 40000);
    assert.ok(settled.video > 0, 'video came before');
    assert.equal(s2.video, settled.video, 'no video bytes, audio-only across replicas');
    await first.getByTestId('toggle-audio-only').click();
    await expectFlowing(first, [ids.host]);

    // A dies: its lease runs out, B takes the room over, the two left renegotiate with it.
    await a.kill();
    await expectFlowing(first, [ids.second], { timeout: 60000 });
    await expectFlowing(second, [ids.first], { timeout: 60000 });
    const next = services.mediaOwner(roomId);
    assert.match(next, /^media-b#/, 'the surviving replica took the room over');
    await screenshot(second, 'cluster-media-after-failover');
  });
});
