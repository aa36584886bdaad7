// Browser tests of audio and video through the server's SFU: three Chromium pages in one room
// (fake camera and microphone), each decoding the two others (RTCPeerConnection.getStats in
// the page: framesDecoded and audio bytesReceived rising); camera and microphone off;
// someone leaving; a person who refused the camera (audio-only) and one who refused both
// (listen-only); a second tab taking the media over; autoplay refused until a tap; a reload;
// a server restart (media comes back); a publisher leaving and another joining on the m-lines
// the first left (m-line reuse: same mids, the newcomer's msid, SSRC, tile and frames). Then a
// server in mesh mode: the same three pages, each with one peer connection per other
// participant (webrtc:* relay, no sfu:* traffic).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  apiAs,
  createRoom,
  expectFlowing,
  launchBrowser,
  meshAudioSent,
  realtimeAvailable,
  screenshot,
  sfuEnv,
  signInAsGuest,
  startServer,
  userIdOf as userId,
} from './harness.mjs';

const STEP = { timeout: 120000 };
const LIVE = { timeout: 10000 };
const MEDIA = { timeout: 30000 };
// A UDP port range of its own, so other test servers on this machine do not collide.
const env = sfuEnv(Number(process.env.TC_E2E_SFU_PORT_MIN ?? 47100), Number(process.env.TC_E2E_SFU_PORT_MAX ?? 47199));

let server = await startServer({ env });
if (!(await realtimeAvailable(server.url))) {
  await server.stop();
  throw new Error('the binary does not serve /socket.io/');
}
let browser;
/** Without --use-fake-ui-for-media-stream: permissions are really asked, and refused
 * headless unless the context grants them. */
let strictBrowser;

before(async () => {
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
  strictBrowser = await launchBrowser({ extraArgs: MEDIA_ARGS, fakeUi: false });
});

after(async () => {
  await browser?.close();
  await strictBrowser?.close();
  await server?.stop();
});

async function newPage(b = browser, options = {}) {
  const context = await b.newContext({ viewport: { width: 1100, height: 800 }, locale: 'en-US', ...options });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.error(`[console] ${msg.text()}`);
  });
  return page;
}


const tile = (page, id) => page.locator(`.tile[data-user-id="${id}"]`);
const videoOn = (page, id) => page.locator(`.tile[data-user-id="${id}"][data-video="on"] video`);

async function enterAs(b, name, roomId, contextOptions) {
  const page = await newPage(b, contextOptions);
  await page.goto(`${server.url}/r/${roomId}`);
  await signInAsGuest(page, name);
  await page.locator('.room .room-name').waitFor(LIVE);
  return page;
}

/** A second tab of `page` (user `pageId`) opens `roomUrl` and takes the media over: the first
 * tab holds no connection and says so, `other` receives from the second; then back. */
async function secondTabTakesOver(page, pageId, other, otherId, roomUrl, shot) {
  const tab2 = await page.context().newPage();
  await tab2.goto(roomUrl);
  await videoOn(tab2, otherId).waitFor(MEDIA);
  await page.getByTestId('media-replaced').waitFor(LIVE);
  assert.equal(await page.evaluate(() => window.__talkconnect.pc), null);
  assert.deepEqual(await page.evaluate(() => Object.keys(window.__talkconnect.peers)), []);
  await expectFlowing(other, [pageId]);
  await screenshot(page, shot);
  await page.getByRole('button', { name: 'Use them here' }).click();
  await tab2.getByTestId('media-replaced').waitFor(LIVE);
  await page.getByTestId('media-replaced').waitFor({ state: 'detached', ...LIVE });
  await expectFlowing(page, [otherId]);
  await expectFlowing(other, [pageId]);
  await tab2.close();
}

/** Reloads `page` (user `pageId`) in the room: media flows both ways with `other` again. */
async function reloadAndFlow(page, pageId, other, otherId) {
  await page.reload();
  await page.locator('.room .room-name').waitFor(LIVE);
  await videoOn(page, otherId).waitFor(MEDIA);
  await expectFlowing(page, [otherId]);
  await expectFlowing(other, [pageId]);
}

describe('audio and video through the SFU', () => {
  let an; // creates the room
  let binh;
  let chi;
  let ids;
  let roomId;

  it('three people see and hear each other', STEP, async () => {
    an = await newPage();
    await an.goto(server.url);
    await signInAsGuest(an, 'An Nguyen');
    roomId = await createRoom(an, { title: 'Media room', topic: 'Cameras' });
    binh = await enterAs(browser, 'Bình Trần', roomId);
    chi = await enterAs(browser, 'Chi Lê', roomId);
    ids = { an: await userId(an), binh: await userId(binh), chi: await userId(chi) };

    const all = { an, binh, chi };
    for (const [who, page] of Object.entries(all)) {
      const others = Object.keys(all).filter((o) => o !== who).map((o) => ids[o]);
      // Own preview plus the two others, all as live video.
      await videoOn(page, ids[who]).waitFor(MEDIA);
      for (const id of others) await videoOn(page, id).waitFor(MEDIA);
      const { before: s1, now: s2 } = await expectFlowing(page, others);
      console.log(`[media] ${who} receives ${JSON.stringify(Object.fromEntries(others.map((id) => [id, [s1[id], s2[id]]])))}`);
      assert.equal(await page.locator('.tile-video.mirrored').count(), 1, 'only the own preview is mirrored');
      assert.equal(await page.locator('.remote-audio audio').count(), 2, 'one audio player per remote participant');
    }
    // Speaking rings from the audio levels (the fake microphones speak: harness.mjs).
    await an.locator(`.tile.speaking[data-user-id="${ids.binh}"], .tile.speaking[data-user-id="${ids.chi}"]`).first().waitFor(MEDIA);
    await screenshot(an, 'media-room');
    await chi.setViewportSize({ width: 390, height: 844 });
    await screenshot(chi, 'media-room-phone');
    await chi.setViewportSize({ width: 1100, height: 800 });
  });

  it('camera off shows the initials to the others; mute shows the badge and silences the track', STEP, async () => {
    await binh.getByRole('button', { name: 'Camera off' }).click();
    for (const page of [an, chi]) {
      await page.locator(`.tile[data-user-id="${ids.binh}"][data-video="off"] .avatar`).waitFor(LIVE);
      assert.equal(await videoOn(page, ids.binh).count(), 0);
      await page
        .locator('.person', { hasText: 'Bình Trần' })
        .locator('[aria-label*="Camera off"]')
        .waitFor(LIVE);
    }
    assert.equal(await binh.evaluate(() => window.__talkconnect.pc.getSenders().find((s) => s.track?.kind === 'video').track.enabled), false);
    // Own tile: initials too, and the button offers to turn it back on.
    await binh.locator(`.tile[data-user-id="${ids.binh}"][data-video="off"]`).waitFor(LIVE);
    await binh.getByRole('button', { name: 'Camera on' }).waitFor(LIVE);

    await binh.getByRole('button', { name: 'Mute', exact: true }).click();
    await an.locator(`.tile[data-user-id="${ids.binh}"] [data-testid="muted-badge"]`).waitFor(LIVE);
    assert.equal(await binh.evaluate(() => window.__talkconnect.pc.getSenders().find((s) => s.track?.kind === 'audio').track.enabled), false);
    await screenshot(an, 'media-camera-off');

    // Back on: the others decode Bình's video again (the SFU asks for a keyframe).
    await binh.getByRole('button', { name: 'Camera on' }).click();
    await binh.getByRole('button', { name: 'Unmute' }).click();
    await videoOn(an, ids.binh).waitFor(LIVE);
    await expectFlowing(an, [ids.binh]);
    assert.equal(await an.locator(`.tile[data-user-id="${ids.binh}"] [data-testid="muted-badge"]`).count(), 0);
  });

  it('someone leaves: the others lose the tile and the media', STEP, async () => {
    await chi.getByRole('button', { name: 'Leave' }).click();
    await chi.getByRole('heading', { name: /Live rooms/ }).waitFor(LIVE);
    assert.equal(await chi.evaluate(() => window.__talkconnect.pc), null, 'the peer connection is gone');
    for (const page of [an, binh]) {
      await tile(page, ids.chi).waitFor({ state: 'detached', ...LIVE });
      await page.waitForFunction((id) => !(id in window.__talkconnect.remote), ids.chi, LIVE);
      assert.equal(await page.locator('.remote-audio audio').count(), 1);
    }
    await chi.context().close();
  });

  it('camera refused: joins with the microphone only, says so, still sees everyone', STEP, async () => {
    const dung = await enterAs(strictBrowser, 'Dũng Phạm', roomId, { permissions: ['microphone'] });
    const dungId = await userId(dung);
    const notice = dung.getByTestId('media-notice');
    await notice.waitFor(MEDIA);
    assert.equal(await notice.getAttribute('data-notice'), 'media.cameraDenied');
    assert.match(await notice.textContent(), /Camera blocked: you joined with your microphone only/);
    await screenshot(dung, 'media-camera-denied');
    assert.ok(await dung.getByRole('button', { name: 'No camera' }).isDisabled());
    // Dũng sees and hears An and Bình…
    for (const id of [ids.an, ids.binh]) await videoOn(dung, id).waitFor(MEDIA);
    await expectFlowing(dung, [ids.an, ids.binh]);
    // …and they hear Dũng and see the initials (camera off for everyone).
    await an.locator(`.tile[data-user-id="${dungId}"][data-video="off"] .avatar`).waitFor(LIVE);
    await expectFlowing(an, [dungId], { video: false });
    await dung.getByRole('button', { name: 'Leave' }).click();
    await tile(an, dungId).waitFor({ state: 'detached', ...LIVE });
    await dung.context().close();
  });

  it('camera and microphone refused: listens only, and sees everyone', STEP, async () => {
    const em = await enterAs(strictBrowser, 'Em Vũ', roomId, { permissions: [] });
    const emId = await userId(em);
    const notice = em.getByTestId('media-notice');
    await notice.waitFor(MEDIA);
    assert.equal(await notice.getAttribute('data-notice'), 'media.listenOnlyDenied');
    for (const id of [ids.an, ids.binh]) await videoOn(em, id).waitFor(MEDIA);
    await expectFlowing(em, [ids.an, ids.binh]);
    assert.equal(
      await em.evaluate(() => window.__talkconnect.pc.getSenders().filter((s) => s.track).length),
      0,
      'nothing published',
    );
    await an.locator(`.tile[data-user-id="${emId}"][data-video="off"] [data-testid="muted-badge"]`).waitFor(LIVE);
    await screenshot(em, 'media-listen-only');
    // The notice in Vietnamese too.
    await em.getByRole('button', { name: 'Tiếng Việt' }).click();
    assert.match(await notice.textContent(), /Camera và micro bị chặn/);
    await em.getByRole('button', { name: 'Rời phòng' }).click();
    await tile(an, emId).waitFor({ state: 'detached', ...LIVE });
    await em.context().close();
  });

  it('a second tab takes the camera and microphone over; the first can take them back', STEP, async () => {
    await secondTabTakesOver(an, ids.an, binh, ids.binh, `${server.url}/r/${roomId}`, 'media-replaced');
  });

  it('a page nobody has touched yet: the sound waits for a tap on "Enable sound"', STEP, async () => {
    // Signed in over REST and opened straight on the room link: no click, no key press yet.
    // Headless Chromium lets every page play sound (its --autoplay-policy flag has no effect
    // headless), so the page gets the policy of mobile Safari/Chrome from an init script:
    // play() with sound is refused until the first user gesture.
    const res = await fetch(`${server.url}/api/auth/guest`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ displayName: 'Giang Đỗ' }),
    });
    const session = await res.json();
    const context = await browser.newContext({ locale: 'en-US' });
    await context.addInitScript((value) => {
      if (!localStorage.getItem('talkconnect.session')) localStorage.setItem('talkconnect.session', value);
      // Playwright's evaluate() counts as a gesture for navigator.userActivation: watch for
      // real (trusted) taps and keys instead.
      let touched = false;
      const touch = (e) => (touched ||= e.isTrusted);
      window.addEventListener('pointerdown', touch, true);
      window.addEventListener('keydown', touch, true);
      const play = HTMLMediaElement.prototype.play;
      HTMLMediaElement.prototype.play = function () {
        if (!this.muted && !touched) {
          return Promise.reject(new DOMException('play() needs a user gesture', 'NotAllowedError'));
        }
        return play.call(this);
      };
    }, JSON.stringify(session));
    const giang = await context.newPage();
    await giang.goto(`${server.url}/r/${roomId}`);
    const blocked = giang.getByTestId('sound-blocked');
    await blocked.waitFor(MEDIA);
    await videoOn(giang, ids.an).waitFor(MEDIA);
    await giang.locator('.remote-audio audio').nth(1).waitFor({ state: 'attached', ...MEDIA });
    await screenshot(giang, 'media-sound-blocked');
    assert.equal(await giang.evaluate(() => [...document.querySelectorAll('.remote-audio audio')].every((a) => a.paused)), true);
    await giang.getByRole('button', { name: 'Enable sound' }).click();
    await blocked.waitFor({ state: 'detached', ...LIVE });
    await giang.waitForFunction(() => [...document.querySelectorAll('.remote-audio audio')].every((a) => !a.paused), null, LIVE);
    await expectFlowing(giang, [ids.an, ids.binh]);
    await giang.getByRole('button', { name: 'Leave' }).click();
    await tile(an, session.user.id).waitFor({ state: 'detached', ...LIVE });
    await context.close();
  });

  it('a reload keeps the seat and brings the media back', STEP, async () => {
    await reloadAndFlow(binh, ids.binh, an, ids.an);
  });

  it('media comes back after the server restarts (socket re-join restarts the SFU session)', STEP, async () => {
    const { dataDir, port } = server;
    await server.stop({ keepData: true });
    await an.getByText('Connection lost. Reconnecting…').waitFor(LIVE);
    server = await startServer({ dataDir, port, env });
    for (const page of [an, binh]) {
      await page.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, MEDIA);
    }
    await expectFlowing(an, [ids.binh], { timeout: 45000 });
    await expectFlowing(binh, [ids.an], { timeout: 45000 });
    // The same room, never ended: both seats kept across the restart.
    const roomId = new URL(an.url()).pathname.split('/r/')[1];
    assert.equal(new URL(binh.url()).pathname, `/r/${roomId}`);
    const { status, body } = await apiAs(an, 'GET', `/api/rooms/${roomId}`);
    assert.equal(status, 200);
    assert.equal(body.status, 'LIVE', 'the room did not end with the restart');
    assert.deepEqual(body.participants.map((p) => p.userId).sort(), [ids.an, ids.binh].sort());
    await an.context().close();
    await binh.context().close();
  });
});

/** The remote description as the page holds it: m-lines (mid, direction, msid stream, SSRCs). */
function remoteSections(page) {
  return page.evaluate(() => {
    const sdp = window.__talkconnect.pc?.remoteDescription?.sdp ?? '';
    return sdp
      .split(/\r\n(?=m=)/)
      .slice(1)
      .map((section) => {
        const lines = section.split('\r\n');
        const attr = (name) => lines.find((l) => l.startsWith(`a=${name}`));
        return {
          kind: lines[0].slice(2).split(' ')[0],
          mid: attr('mid:')?.slice(6) ?? null,
          direction: ['sendonly', 'recvonly', 'sendrecv', 'inactive'].find((d) => lines.includes(`a=${d}`)),
          stream: attr('msid:')?.slice(7).split(' ')[0] ?? null,
          ssrcs: [...new Set(lines.filter((l) => l.startsWith('a=ssrc:')).map((l) => l.split(' ')[0].slice(7)))],
        };
      });
  });
}

/** Video frames decoded on the m-line `mid` (every inbound-rtp of that mid, getStats). */
function framesDecodedOn(page, mid) {
  return page.evaluate(async (m) => {
    let frames = 0;
    (await window.__talkconnect.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && r.mid === m) frames += r.framesDecoded ?? 0;
    });
    return frames;
  }, mid);
}

describe('m-line reuse through the SFU', () => {
  it('a publisher leaves, another joins: same m-lines, new person, right tile', STEP, async () => {
    const an = await newPage();
    await an.goto(server.url);
    await signInAsGuest(an, 'An Nguyen');
    const roomId = await createRoom(an, { title: 'Churn room' });
    const binh = await enterAs(browser, 'Bình Trần', roomId);
    const ids = { an: await userId(an), binh: await userId(binh) };
    await videoOn(an, ids.binh).waitFor(MEDIA);

    const withBinh = await remoteSections(an);
    const binhSections = withBinh.filter((s) => s.stream === ids.binh && s.direction === 'sendonly');
    assert.equal(binhSections.length, 2, `Bình's audio and video m-lines: ${JSON.stringify(withBinh)}`);

    await binh.getByRole('button', { name: 'Leave' }).click();
    await an.locator(`.tile[data-user-id="${ids.binh}"]`).waitFor({ state: 'detached', ...LIVE });
    // The departure is negotiated: Bình's m-lines are inactive.
    await an.waitForFunction(
      (mids) => {
        const sdp = window.__talkconnect.pc?.remoteDescription?.sdp ?? '';
        const sections = sdp.split(/\r\n(?=m=)/);
        return (
          window.__talkconnect.pc.signalingState === 'stable' &&
          mids.every((mid) => sections.some((s) => s.includes(`a=mid:${mid}\r\n`) && s.includes('a=inactive')))
        );
      },
      binhSections.map((s) => s.mid),
      LIVE,
    );
    await binh.context().close();
    // Every `track` event from here on (the app's own handler stays in place).
    await an.evaluate(() => {
      window.__trackEvents = [];
      window.__talkconnect.pc.addEventListener('track', (e) =>
        window.__trackEvents.push({ mid: e.transceiver.mid, stream: e.streams[0]?.id ?? null }),
      );
    });

    const chi = await enterAs(browser, 'Chi Lê', roomId);
    const chiId = await userId(chi);
    await videoOn(an, chiId).waitFor(MEDIA);
    const tile = an.locator(`.tile[data-user-id="${chiId}"]`);
    assert.match(await tile.textContent(), /Chi Lê/, "the tile is labelled with Chi's name");

    const withChi = await remoteSections(an);
    assert.ok(withChi.length <= withBinh.length, `m-lines: ${withBinh.length} with Bình, ${withChi.length} with Chi`);
    const chiSections = withChi.filter((s) => s.stream === chiId && s.direction === 'sendonly');
    assert.deepEqual(
      chiSections.map((s) => s.mid).sort(),
      binhSections.map((s) => s.mid).sort(),
      "Chi's media arrives on the m-lines Bình left",
    );
    // The browser fired `track` again on each recycled m-line, with Chi's stream.
    const events = await an.evaluate(() => window.__trackEvents);
    assert.deepEqual(
      events.filter((e) => e.stream === chiId).map((e) => e.mid).sort(),
      binhSections.map((s) => s.mid).sort(),
      `track events: ${JSON.stringify(events)}`,
    );
    for (const s of chiSections) {
      const was = binhSections.find((b) => b.mid === s.mid);
      assert.notDeepEqual(s.ssrcs, was.ssrcs, `mid ${s.mid}: a new SSRC for the new publisher`);
    }
    // The page maps Chi's tile to the receiver of the recycled video m-line, and decodes it.
    const videoMid = chiSections.find((s) => s.kind === 'video').mid;
    const mapped = await an.evaluate(
      ([id, mid]) => {
        const tc = window.__talkconnect;
        const t = tc.pc.getTransceivers().find((x) => x.mid === mid);
        return tc.remote[id]?.video === t?.receiver.track.id;
      },
      [chiId, videoMid],
    );
    assert.ok(mapped, "Chi's tile shows the track of the recycled video m-line");
    const first = await framesDecodedOn(an, videoMid);
    const deadline = Date.now() + MEDIA.timeout;
    let frames = first;
    while (frames <= first + 10 && Date.now() < deadline) {
      await an.waitForTimeout(500);
      frames = await framesDecodedOn(an, videoMid);
    }
    assert.ok(frames > first + 10, `video frames decoded on mid ${videoMid}: ${first} then ${frames}`);
    console.log(
      `[mline] m-lines ${withBinh.length} → ${withChi.length}; video mid ${videoMid} ssrc ${JSON.stringify(binhSections.find((s) => s.kind === 'video').ssrcs)} → ${JSON.stringify(chiSections.find((s) => s.kind === 'video').ssrcs)}; frames ${first} → ${frames}`,
    );
    await screenshot(an, 'mline-reuse');
    await chi.context().close();
    await an.context().close();
  });
});

describe('a server in mesh mode: browser to browser', () => {
  let mesh;
  let an;
  let binh;
  let chi;
  let ids;
  let roomId;
  // A short seat grace period: a closed page's seat (and tile) goes in 8 s, not 15.
  const meshEnv = { TALKCONNECT__MEDIA__MODE: 'mesh', TALKCONNECT__REALTIME__SEAT_GRACE_SECS: '8' };
  /** Socket.IO frames naming an `sfu:*` event, per page (there must be none). */
  const sfuFrames = [];

  before(async () => {
    mesh = await startServer({ env: meshEnv });
  });

  after(async () => {
    await mesh?.stop();
  });

  async function meshPage(name, roomId) {
    const page = await newPage();
    const watch = (text) => typeof text === 'string' && text.includes('"sfu:') && sfuFrames.push(`${name}: ${text}`);
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => watch(f.payload));
      ws.on('framereceived', (f) => watch(f.payload));
    });
    page.on('request', (r) => r.url().includes('/socket.io/') && watch(r.postData()));
    page.on('response', async (r) => {
      if (r.url().includes('/socket.io/')) watch(await r.text().catch(() => ''));
    });
    await page.goto(roomId ? `${mesh.url}/r/${roomId}` : mesh.url);
    await signInAsGuest(page, name);
    return page;
  }

  const peersOf = (page) => page.evaluate(() => Object.keys(window.__talkconnect.peers).sort());

  it('three people see and hear each other over one peer connection per pair, told that IPs are visible', STEP, async () => {
    an = await meshPage('An Mesh');
    roomId = await createRoom(an, { title: 'Mesh room' });
    binh = await meshPage('Bình Mesh', roomId);
    chi = await meshPage('Chi Mesh', roomId);
    ids = { an: await userId(an), binh: await userId(binh), chi: await userId(chi) };
    const all = { an, binh, chi };
    for (const [who, page] of Object.entries(all)) {
      const others = Object.keys(all).filter((o) => o !== who).map((o) => ids[o]);
      const notice = page.getByTestId('media-mode-notice');
      await notice.waitFor(LIVE);
      assert.equal(await notice.getAttribute('data-notice'), 'media.meshMode');
      assert.match(await notice.textContent(), /can see your IP address/);
      await videoOn(page, ids[who]).waitFor(MEDIA);
      for (const id of others) await videoOn(page, id).waitFor(MEDIA);
      const { before: s1, now: s2 } = await expectFlowing(page, others);
      console.log(`[mesh] ${who} receives ${JSON.stringify(Object.fromEntries(others.map((id) => [id, [s1[id], s2[id]]])))}`);
      assert.deepEqual(await peersOf(page), [...others].sort(), 'one peer connection per other participant');
      assert.equal(await page.evaluate(() => window.__talkconnect.pc), null, 'no SFU connection');
      assert.equal(await page.locator('.tile-video.mirrored').count(), 1, 'only the own preview is mirrored');
      assert.equal(await page.locator('.remote-audio audio').count(), 2, 'one audio player per remote participant');
    }
    await an.locator(`.tile.speaking[data-user-id="${ids.binh}"], .tile.speaking[data-user-id="${ids.chi}"]`).first().waitFor(MEDIA);
    await screenshot(an, 'media-mesh-room');
    assert.deepEqual(sfuFrames, [], 'no sfu:* event in mesh mode');
  });

  it('mute stops sending audio to everyone and marks the tile; camera off shows the initials', STEP, async () => {
    const sent = () => meshAudioSent(binh);
    // Sending before the mute (so the check below can tell the difference)…
    const a = await sent();
    await binh.waitForTimeout(1500);
    const b = await sent();
    for (const id of [ids.an, ids.chi]) assert.ok(b[id] > a[id], `audio flows to ${id}: ${a[id]} → ${b[id]}`);

    await binh.getByRole('button', { name: 'Mute', exact: true }).click();
    for (const page of [an, chi]) await tile(page, ids.binh).locator('[data-testid="muted-badge"]').waitFor(LIVE);
    await binh.waitForTimeout(500); // packets already on their way
    const c = await sent();
    await binh.waitForTimeout(1500);
    const d = await sent();
    for (const id of [ids.an, ids.chi]) assert.equal(d[id], c[id], `nothing sent to ${id} while muted`);

    await binh.getByRole('button', { name: 'Camera off' }).click();
    for (const page of [an, chi]) {
      await page.locator(`.tile[data-user-id="${ids.binh}"][data-video="off"] .avatar`).waitFor(LIVE);
    }
    await screenshot(an, 'media-mesh-muted');

    await binh.getByRole('button', { name: 'Unmute' }).click();
    await binh.getByRole('button', { name: 'Camera on' }).click();
    await videoOn(an, ids.binh).waitFor(LIVE);
    await expectFlowing(an, [ids.binh]);
    await expectFlowing(chi, [ids.binh]);
    assert.equal(await tile(an, ids.binh).locator('[data-testid="muted-badge"]').count(), 0);
  });

  it('a second tab takes the media over (tabs of one browser agree), the first takes it back', STEP, async () => {
    await secondTabTakesOver(an, ids.an, chi, ids.chi, `${mesh.url}/r/${roomId}`, 'media-mesh-replaced');
    await expectFlowing(binh, [ids.an]);
  });

  it('someone leaves: the others close the connection and lose the tile', STEP, async () => {
    await chi.getByRole('button', { name: 'Leave' }).click();
    await chi.getByRole('heading', { name: /Live rooms/ }).waitFor(LIVE);
    assert.deepEqual(await peersOf(chi), [], 'all connections closed');
    for (const page of [an, binh]) {
      await tile(page, ids.chi).waitFor({ state: 'detached', ...LIVE });
      await page.waitForFunction((id) => !(id in window.__talkconnect.peers), ids.chi, LIVE);
      await page.waitForFunction((id) => !(id in window.__talkconnect.remote), ids.chi, LIVE);
      assert.equal(await page.locator('.remote-audio audio').count(), 1);
    }
    await chi.context().close();
  });

  it('a reload opens a new connection that replaces the old one', STEP, async () => {
    await reloadAndFlow(binh, ids.binh, an, ids.an);
    assert.deepEqual(await peersOf(an), [ids.binh]);
  });

  it('the server restarts: media between browsers goes on, and signaling works again after', STEP, async () => {
    const { dataDir, port } = mesh;
    await mesh.stop({ keepData: true });
    await an.getByText('Connection lost. Reconnecting…').waitFor(LIVE);
    // No server: the browsers still hear and see each other.
    await expectFlowing(an, [ids.binh]);
    mesh = await startServer({ dataDir, port, env: meshEnv });
    for (const page of [an, binh]) {
      await page.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, MEDIA);
    }
    // Someone new after the restart: connections are made both ways through the new server.
    const giang = await meshPage('Giang Mesh', roomId);
    const giangId = await userId(giang);
    await expectFlowing(giang, [ids.an, ids.binh]);
    await expectFlowing(an, [ids.binh, giangId]);
    await expectFlowing(binh, [ids.an, giangId]);
    await giang.getByRole('button', { name: 'Leave' }).click();
    await tile(an, giangId).waitFor({ state: 'detached', ...LIVE });
    await giang.context().close();
  });

  it('a kicked participant: connections closed on both sides', STEP, async () => {
    const res = await apiAs(an, 'POST', `/api/rooms/${roomId}/kick/${ids.binh}`);
    assert.equal(res.status, 200);
    await tile(an, ids.binh).waitFor({ state: 'detached', ...LIVE });
    await an.waitForFunction((id) => !(id in window.__talkconnect.peers), ids.binh, LIVE);
    await binh.waitForFunction(() => Object.keys(window.__talkconnect.peers).length === 0, null, LIVE);
    await binh.context().close();
  });

  it('a page that closes: its tile and connection go when its seat is released', STEP, async () => {
    const dung = await meshPage('Dũng Mesh', roomId);
    const dungId = await userId(dung);
    await videoOn(an, dungId).waitFor(MEDIA);
    await expectFlowing(an, [dungId]);
    await dung.context().close();
    await tile(an, dungId).waitFor({ state: 'detached', timeout: 20000 });
    await an.waitForFunction((id) => !(id in window.__talkconnect.peers), dungId, LIVE);
    assert.equal(await an.locator('.remote-audio audio').count(), 0);
    assert.deepEqual(sfuFrames, [], 'no sfu:* event in mesh mode');
    await an.context().close();
  });
});
