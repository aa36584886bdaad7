// Firefox in a call: a headless Firefox page (Debian's firefox-esr through geckodriver,
// e2e/firefox.mjs) and a Chromium page (playwright-core) in one SFU room, both relay-only
// (`iceTransportPolicy: 'relay'`) through the binary's TURN relay. Each sees and hears the
// other (getStats in each page: frames decoded and audio bytes rising), and each one's
// selected candidate pair is a relayed one. Firefox joins through the app's own UI (sign in as
// a guest, the room link), with fake media and loopback ICE allowed by its prefs.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { launchFirefox } from './firefox.mjs';
import {
  ARTIFACTS,
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  freeUdpPort,
  launchBrowser,
  screenshot,
  signInAsGuest,
  startServer,
  turnEnv,
} from './harness.mjs';

const STEP = { timeout: 120000 };
const MEDIA_MS = 45000;
const RELAY_PORTS = [47500, 47549];

/** In the page (Chromium or Firefox): per remote publisher, frames decoded and audio bytes,
 * as the harness's remoteStats; Firefox reports the same inbound-rtp fields. */
async function remoteStatsInPage() {
  const tc = window.__talkconnect;
  if (!tc?.pc) return {};
  const byTrack = {};
  (await tc.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp') {
      byTrack[r.trackIdentifier] = { framesDecoded: r.framesDecoded ?? 0, bytesReceived: r.bytesReceived ?? 0 };
    }
  });
  const out = {};
  for (const [id, t] of Object.entries(tc.remote)) {
    out[id] = {
      framesDecoded: t.video ? (byTrack[t.video]?.framesDecoded ?? 0) : null,
      audioBytes: t.audio ? (byTrack[t.audio]?.bytesReceived ?? 0) : null,
    };
  }
  return out;
}

/** In the page: the selected candidate pair of the SFU connection. Chromium names it from its
 * transport stats; Firefox has none and marks the pair itself (`selected`). */
async function selectedPairInPage() {
  const stats = await window.__talkconnect.pc.getStats();
  const pairs = [];
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pairs.push(stats.get(r.selectedCandidatePairId));
  });
  if (pairs.length === 0) {
    stats.forEach((r) => {
      if (r.type === 'candidate-pair' && r.selected) pairs.push(r);
    });
  }
  return pairs.map((pair) => {
    const local = stats.get(pair.localCandidateId);
    return { local: local.candidateType, relayProtocol: local.relayProtocol ?? null, remote: stats.get(pair.remoteCandidateId).candidateType };
  });
}

/** Two samples a second apart in Firefox show `publisher`'s video frames and audio rising. */
async function expectFlowingInFirefox(firefox, publisher) {
  const deadline = Date.now() + MEDIA_MS;
  let before = await firefox.evaluate(remoteStatsInPage);
  let now = before;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    now = await firefox.evaluate(remoteStatsInPage);
    const a = before[publisher];
    const b = now[publisher];
    if (a && b && a.framesDecoded > 0 && b.framesDecoded > a.framesDecoded && a.audioBytes > 0 && b.audioBytes > a.audioBytes) {
      return { before, now };
    }
    before = now;
  }
  assert.fail(`Firefox receives no media from ${publisher}: ${JSON.stringify({ before, now })}`);
}

let chromium;
let firefox;
before(async () => {
  chromium = await launchBrowser({ extraArgs: MEDIA_ARGS });
  firefox = await launchFirefox();
});
after(async () => {
  await chromium?.close();
  await firefox?.close();
});

describe('Firefox and Chromium in one call', () => {
  it('relay-only in SFU mode: media both ways over relayed pairs', STEP, async () => {
    const port = await freeUdpPort();
    const server = await startServer({
      env: {
        TALKCONNECT__MEDIA__MODE: 'sfu',
        ...turnEnv({ port, relayPorts: RELAY_PORTS }),
      },
    });
    try {
      const context = await chromium.newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US' });
      await context.addInitScript(() => localStorage.setItem('talkconnect.relayOnly', '1'));
      const an = await context.newPage();
      an.on('pageerror', (err) => console.error(`[chromium page error] ${err.message}`));
      await an.goto(server.url);
      await signInAsGuest(an, 'An on Chromium');
      const roomId = await createRoom(an, { title: 'Firefox meets Chromium' });
      const anId = await an.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);

      // Firefox: relay-only set before the app reads it, then in through the sign-in form.
      await firefox.goto(server.url);
      await firefox.evaluate(() => localStorage.setItem('talkconnect.relayOnly', '1'));
      await firefox.goto(`${server.url}/r/${roomId}`);
      await firefox.type(await firefox.find('#guest-name'), 'Lan on Firefox');
      await firefox.click(await firefox.find('form button[type="submit"]'));
      await firefox.find('.room .room-name', { timeout: 10000 });
      const lanId = await firefox.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);
      console.log(`[firefox] ${firefox.version}`);

      await an.locator(`.tile[data-user-id="${lanId}"][data-video="on"] video`).waitFor({ timeout: MEDIA_MS });
      const inChromium = await expectFlowing(an, [lanId], { timeout: MEDIA_MS });
      const inFirefox = await expectFlowingInFirefox(firefox, anId);
      await firefox.find(`.tile[data-user-id="${anId}"][data-video="on"] video`);
      console.log(`[firefox] Chromium receives ${JSON.stringify(inChromium.now)}; Firefox receives ${JSON.stringify(inFirefox.now)}`);

      for (const [name, pairs] of [
        ['Chromium', await an.evaluate(selectedPairInPage)],
        ['Firefox', await firefox.evaluate(selectedPairInPage)],
      ]) {
        console.log(`[firefox] ${name} selected ${JSON.stringify(pairs)}`);
        assert.equal(pairs.length, 1, `${name}: ${JSON.stringify(pairs)}`);
        assert.equal(pairs[0].local, 'relay', `${name} selected a non-relayed pair: ${JSON.stringify(pairs[0])}`);
      }
      await screenshot(an, 'firefox-call-chromium');
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(join(ARTIFACTS, 'firefox-call-firefox.png'), await firefox.screenshot());
      await context.close();
    } finally {
      await server.stop();
    }
  });
});
