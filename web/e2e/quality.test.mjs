// Browser tests of quality in the UI (docs/SFU.md, Quality): the connection-quality indicator
// on every tile; audio-only (the subscriber's inbound video bytes stop growing while audio
// keeps growing, and the server's forwarded bytes fall with it); Opus FEC and DTX asked for
// in the server's SDP, and DTX at work (a muted microphone sends a tenth of the packets);
// and a room of 6 Chromium pages whose uplink each stays below the
// server's budget (`[media] uplink_kbps`). The fake camera plays a 320x240 noise clip at 10
// frames/s: small for the machine's two cores, and an encoder that always wants more bits
// than the budget gives.
//
// Then a server in mesh mode: three pages, each page's uplink (all its peer connections) below
// the budget, which the app divides among its peers; audio-only stops the video the others
// send to that page (its video transceivers stop receiving).
//
// TC_QUALITY_NO_BUDGET=1 runs the rooms with an unlimited budget and only prints their
// uplink (the figures to compare with).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  createRoom,
  launchBrowser,
  noiseClip,
  realtimeAvailable,
  screenshot,
  signInAsGuest,
  startServer,
  userIdOf,
} from './harness.mjs';

const STEP = { timeout: 240000 };
const LIVE = { timeout: 15000 };
const MEDIA = { timeout: 60000 };
const BUDGET_KBPS = process.env.TC_QUALITY_NO_BUDGET === '1' ? 100000 : 400;
const METRICS_TOKEN = 'quality-test-metrics-token';
const LEVELS = ['good', 'fair', 'poor', 'lost'];

const server = await startServer({
  env: { TALKCONNECT__MEDIA__UPLINK_KBPS: String(BUDGET_KBPS), TALKCONNECT__METRICS__TOKEN: METRICS_TOKEN },
});
if (!(await realtimeAvailable(server.url))) {
  await server.stop();
  throw new Error('the binary does not serve /socket.io/');
}
let browser;

before(async () => {
  browser = await launchBrowser({ extraArgs: [...MEDIA_ARGS, `--use-file-for-fake-video-capture=${noiseClip({ width: 320, height: 240, fps: 10, frames: 20 })}`] });
});

let meshServer;

after(async () => {
  await browser?.close();
  await server?.stop();
  await meshServer?.stop();
});

async function enter(name, roomId) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(roomId ? `${server.url}/r/${roomId}` : server.url);
  await signInAsGuest(page, name);
  if (roomId) await page.locator('.room .room-name').waitFor(LIVE);
  return page;
}

/** Per remote publisher: inbound bytes of their audio and video (getStats of the SFU's
 * connection in the page), and the page's own transport bytes sent. */
function byteCounts(page) {
  return page.evaluate(async () => {
    const tc = window.__talkconnect;
    const out = { at: 0, sent: 0, remote: {} };
    if (!tc?.pc) return out;
    const byTrack = {};
    (await tc.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') byTrack[r.trackIdentifier] = r.bytesReceived ?? 0;
      if (r.type === 'transport') {
        out.sent += r.bytesSent ?? 0;
        out.at = r.timestamp;
      }
    });
    for (const [id, t] of Object.entries(tc.remote)) {
      out.remote[id] = { audio: t.audio ? (byTrack[t.audio] ?? 0) : 0, video: t.video ? (byTrack[t.video] ?? 0) : 0 };
    }
    return out;
  });
}

async function forwardedBytes() {
  const res = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.equal(res.status, 200);
  const line = (await res.text()).split('\n').find((l) => /^talkconnect_sfu_forwarded_bytes(_total)?\s/.test(l));
  assert.ok(line, 'the SFU reports its forwarded bytes');
  return Number(line.trim().split(/\s+/).pop());
}

/** Waits until `cond(sample)` holds for a fresh sample of `page`, polling each second. */
async function until(page, what, cond, timeout = MEDIA.timeout) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await byteCounts(page);
    if (cond(last)) return last;
    await page.waitForTimeout(1000);
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}

describe('quality in the UI', () => {
  let an;
  let binh;
  let ids;

  it('every tile shows a connection-quality level, named for screen readers', STEP, async () => {
    an = await enter('An Nguyen');
    const roomId = await createRoom(an, { title: 'Quality room' });
    binh = await enter('Bình Trần', roomId);
    ids = { an: await userIdOf(an), binh: await userIdOf(binh) };
    for (const [page, other] of [
      [an, ids.binh],
      [binh, ids.an],
    ]) {
      await until(page, 'media flows', (s) => s.remote[other]?.video > 0 && s.remote[other]?.audio > 0);
    }
    for (const page of [an, binh]) {
      for (const id of [ids.an, ids.binh]) {
        const indicator = page.locator(`.tile[data-user-id="${id}"] [data-testid="quality"]`);
        await page
          .locator(`.tile[data-user-id="${id}"] [data-testid="quality"]:is(${LEVELS.map((l) => `[data-level="${l}"]`).join(',')})`)
          .waitFor(MEDIA);
        const level = await indicator.getAttribute('data-level');
        const label = await indicator.getAttribute('aria-label');
        assert.ok(LEVELS.includes(level), level);
        assert.match(label, /^Connection/);
        assert.match(await indicator.getAttribute('title'), /\. /, 'the tooltip explains the level');
      }
    }
    await screenshot(an, 'quality-indicator');
  });

  it("the server's SDP asks for Opus in-band FEC and DTX", STEP, async () => {
    const sdp = await an.evaluate(() => ({
      remote: window.__talkconnect.pc.remoteDescription.sdp,
      local: window.__talkconnect.pc.localDescription.sdp,
    }));
    const opusFmtp = (text) => {
      const pt = text.match(/a=rtpmap:(\d+) opus\/48000/i)?.[1];
      return text.split(/\r?\n/).filter((l) => l.startsWith(`a=fmtp:${pt} `));
    };
    const server = opusFmtp(sdp.remote);
    assert.ok(server.length > 0, 'an Opus fmtp line from the server');
    for (const line of server) assert.match(line, /useinbandfec=1/), assert.match(line, /usedtx=1/);
    console.log(`[quality] server Opus fmtp: ${server[0]}; Chromium's own: ${opusFmtp(sdp.local)[0]}`);

    // DTX at work: a muted microphone (silence) sends a packet every 400 ms instead of every
    // 20 ms. Counted against video frames sent (10 a second), not against the clock.
    const sent = () =>
      an.evaluate(async () => {
        const out = { audio: 0, frames: 0 };
        (await window.__talkconnect.pc.getStats()).forEach((r) => {
          if (r.type === 'outbound-rtp' && r.kind === 'audio') out.audio += r.packetsSent ?? 0;
          if (r.type === 'outbound-rtp' && r.kind === 'video') out.frames += r.framesEncoded ?? 0;
        });
        return out;
      });
    const perFrame = async () => {
      const a = await sent();
      let b = a;
      while (b.frames < a.frames + 40) {
        await an.waitForTimeout(500);
        b = await sent();
      }
      return (b.audio - a.audio) / (b.frames - a.frames);
    };
    const speaking = await perFrame();
    await an.getByTestId('toggle-mic').click();
    await an.waitForTimeout(1000);
    const silent = await perFrame();
    await an.getByTestId('toggle-mic').click();
    console.log(`[quality] audio packets per video frame sent: ${speaking.toFixed(2)} speaking, ${silent.toFixed(2)} muted (DTX)`);
    assert.ok(silent * 4 < speaking, `DTX: silence sends far fewer packets (${speaking} → ${silent})`);
  });

  it('audio-only: no more video reaches the page, audio goes on, the server forwards less', STEP, async () => {
    const rate = async () => {
      // Forwarded bytes per audio byte the two pages receive: no clock involved.
      const [f0, a0, b0] = [await forwardedBytes(), await byteCounts(an), await byteCounts(binh)];
      await until(an, 'audio keeps coming', (s) => s.remote[ids.binh].audio > a0.remote[ids.binh].audio + 40000);
      const [f1, a1, b1] = [await forwardedBytes(), await byteCounts(an), await byteCounts(binh)];
      const audio = a1.remote[ids.binh].audio - a0.remote[ids.binh].audio + (b1.remote[ids.an].audio - b0.remote[ids.an].audio);
      return (f1 - f0) / audio;
    };
    const withVideo = await rate();

    for (const page of [an, binh]) {
      await page.getByTestId('toggle-audio-only').click();
      assert.equal(await page.getByTestId('toggle-audio-only').getAttribute('aria-pressed'), 'true');
    }
    const other = { an: ids.binh, binh: ids.an };
    for (const [who, page] of [
      ['an', an],
      ['binh', binh],
    ]) {
      const tile = page.locator(`.tile[data-user-id="${other[who]}"]`);
      await tile.getByTestId('audio-only-badge').waitFor(LIVE);
      assert.equal(await tile.getAttribute('data-video'), 'off', 'the avatar instead of the video');
      assert.equal(await page.evaluate(() => localStorage.getItem('talkconnect.audioOnly')), '1');
      // What was on its way lands first: settle on audio progress, then video must stand still.
      const s0 = await byteCounts(page);
      const settled = await until(page, 'audio after the switch', (s) => s.remote[other[who]].audio > s0.remote[other[who]].audio + 20000);
      const s2 = await until(page, 'more audio, audio-only', (s) => s.remote[other[who]].audio > settled.remote[other[who]].audio + 40000);
      console.log(`[quality] ${who} audio-only: video ${settled.remote[other[who]].video} → ${s2.remote[other[who]].video} bytes, audio ${settled.remote[other[who]].audio} → ${s2.remote[other[who]].audio}`);
      assert.equal(s2.remote[other[who]].video, settled.remote[other[who]].video, 'no video bytes arrive');
    }
    const audioOnly = await rate();
    console.log(`[quality] SFU forwarded bytes per received audio byte: ${withVideo.toFixed(2)} with video, ${audioOnly.toFixed(2)} audio-only`);
    assert.ok(audioOnly * 2 < withVideo, `the server forwards far less (${withVideo} → ${audioOnly})`);

    // Video again: it comes back.
    const back = await byteCounts(an);
    await an.getByTestId('toggle-audio-only').click();
    await until(an, 'video resumes', (s) => s.remote[ids.binh].video > back.remote[ids.binh].video + 20000);
    await an.locator(`.tile[data-user-id="${ids.binh}"][data-video="on"]`).waitFor(MEDIA);
    await binh.getByTestId('toggle-audio-only').click();
    await an.context().close();
    await binh.context().close();
  });

  it(`a room of 6: each page's uplink stays below the budget (${BUDGET_KBPS} kbit/s)`, STEP, async () => {
    const first = await enter('Page 1');
    const roomId = await createRoom(first, { title: 'Room of six', seats: 6 });
    const pages = [first];
    for (let i = 2; i <= 6; i++) pages.push(await enter(`Page ${i}`, roomId));
    const everyone = await Promise.all(pages.map((p) => userIdOf(p)));
    // Everyone receives the five others' video.
    for (const [i, page] of pages.entries()) {
      const others = everyone.filter((_, j) => j !== i);
      await until(page, `page ${i + 1} receives everyone`, (s) => others.every((id) => s.remote[id]?.video > 0), 120000);
    }
    // Past the start (bandwidth probing), then one window of at least 10 s per page.
    await first.waitForTimeout(8000);
    const start = await Promise.all(pages.map(byteCounts));
    await first.waitForTimeout(12000);
    const end = await Promise.all(pages.map(byteCounts));
    const kbps = pages.map((_, i) => ((end[i].sent - start[i].sent) * 8) / (end[i].at - start[i].at));
    console.log(`[quality] room of 6, budget ${BUDGET_KBPS} kbit/s: uplink per page ${kbps.map((k) => k.toFixed(0)).join(', ')} kbit/s`);
    await screenshot(first, 'quality-room-of-six');
    for (const [i, k] of kbps.entries()) {
      assert.ok(end[i].at - start[i].at >= 10000, 'a window of at least 10 s');
      assert.ok(k > 30, `page ${i + 1} sends media (${k} kbit/s)`);
      if (BUDGET_KBPS < 100000) assert.ok(k <= BUDGET_KBPS, `page ${i + 1}: ${k.toFixed(0)} kbit/s over the ${BUDGET_KBPS} budget`);
    }
    await Promise.all(pages.map((p) => p.context().close()));
  });
});

/** Mesh mode, per peer connection (by the other's user id): bytes received by kind, and the
 * bytes this page sent in all (every connection's transport). */
function meshCounts(page) {
  return page.evaluate(async () => {
    const out = { at: 0, sent: 0, from: {} };
    for (const [id, pc] of Object.entries(window.__talkconnect?.peers ?? {})) {
      const from = (out.from[id] = { audio: 0, video: 0 });
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') from[r.kind] += r.bytesReceived ?? 0;
        if (r.type === 'transport') {
          out.sent += r.bytesSent ?? 0;
          out.at = Math.max(out.at, r.timestamp);
        }
      });
    }
    return out;
  });
}

async function meshUntil(page, what, cond, timeout = MEDIA.timeout) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await meshCounts(page);
    if (cond(last)) return last;
    await page.waitForTimeout(1000);
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}

describe('quality in mesh mode', () => {
  const MESH_BUDGET = process.env.TC_QUALITY_NO_BUDGET === '1' ? 100000 : 600;

  it(`each page's uplink to its two peers stays below the budget (${MESH_BUDGET} kbit/s); audio-only stops their video`, STEP, async () => {
    meshServer = await startServer({
      env: { TALKCONNECT__MEDIA__MODE: 'mesh', TALKCONNECT__MEDIA__UPLINK_KBPS: String(MESH_BUDGET) },
    });
    const enterMesh = async (name, roomId) => {
      const context = await browser.newContext({ viewport: { width: 900, height: 700 }, locale: 'en-US' });
      const page = await context.newPage();
      await page.goto(roomId ? `${meshServer.url}/r/${roomId}` : meshServer.url);
      await signInAsGuest(page, name);
      if (roomId) await page.locator('.room .room-name').waitFor(LIVE);
      return page;
    };
    const first = await enterMesh('Mesh 1');
    const roomId = await createRoom(first, { title: 'Mesh quality' });
    const pages = [first, await enterMesh('Mesh 2', roomId), await enterMesh('Mesh 3', roomId)];
    const everyone = await Promise.all(pages.map((p) => userIdOf(p)));
    for (const [i, page] of pages.entries()) {
      const others = everyone.filter((_, j) => j !== i);
      await meshUntil(page, `mesh page ${i + 1} receives both others`, (s) => others.every((id) => s.from[id]?.video > 0), 120000);
    }
    await first.waitForTimeout(8000);
    const start = await Promise.all(pages.map(meshCounts));
    await first.waitForTimeout(12000);
    const end = await Promise.all(pages.map(meshCounts));
    const kbps = pages.map((_, i) => ((end[i].sent - start[i].sent) * 8) / (end[i].at - start[i].at));
    console.log(`[quality] mesh room of 3, budget ${MESH_BUDGET} kbit/s: uplink per page ${kbps.map((k) => k.toFixed(0)).join(', ')} kbit/s`);
    for (const [i, k] of kbps.entries()) {
      assert.ok(k > 30, `page ${i + 1} sends media (${k} kbit/s)`);
      if (MESH_BUDGET < 100000) assert.ok(k <= MESH_BUDGET, `page ${i + 1}: ${k.toFixed(0)} kbit/s over the ${MESH_BUDGET} budget`);
    }

    // Audio-only on the first page: both others stop sending it video; audio goes on.
    await first.getByTestId('toggle-audio-only').click();
    const others = everyone.slice(1);
    const s0 = await meshCounts(first);
    const settled = await meshUntil(first, 'audio after the switch', (s) => others.every((id) => s.from[id].audio > s0.from[id].audio + 20000));
    const s2 = await meshUntil(first, 'more audio, audio-only', (s) => others.every((id) => s.from[id].audio > settled.from[id].audio + 40000));
    for (const id of others) {
      console.log(`[quality] mesh audio-only, from ${id}: video ${settled.from[id].video} → ${s2.from[id].video} bytes`);
      assert.equal(s2.from[id].video, settled.from[id].video, 'no video arrives from a peer');
    }
    const second = await meshCounts(pages[1]);
    await meshUntil(pages[1], 'the others still get video', (s) => s.from[everyone[2]].video > second.from[everyone[2]].video + 20000);
    await first.getByTestId('toggle-audio-only').click();
    await Promise.all(pages.map((p) => p.context().close()));
  });
});
