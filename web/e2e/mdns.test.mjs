// Browser tests of a client that hides its addresses behind mDNS names. Chromium holding no
// camera or microphone permission gives its host candidates as `<uuid>.local` names, which the
// SFU ignores (src/sfu/candidate.rs: it resolves no names). Such a client still connects: the
// SFU learns its address from the client's own connectivity checks (a peer-reflexive
// candidate). Headless Chromium obfuscates by default (no flag turns it on here; none that
// turns it off is passed). The page records every candidate its peer connections gather and
// every SDP they produce (RTCPeerConnection wrapped by an init script), and the tests assert:
// - SFU mode, ICE on its own: every host candidate the page sent is a `.local` name, none is
//   an IP, the selected pair uses the page's host candidate, and another participant's media
//   arrives;
// - SFU mode, relay-only (`iceTransportPolicy: 'relay'` through the binary's TURN relay):
//   Chromium then gathers no host candidate at all, `.local` or not, and the media arrives
//   over a relayed pair.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  freeUdpPort,
  launchBrowser,
  screenshot,
  signInAsGuest,
  startServer,
  turnEnv,
  userIdOf as userId,
} from './harness.mjs';

const STEP = { timeout: 90000 };
const LIVE = { timeout: 10000 };
const MEDIA = { timeout: 45000 };
const RELAY_PORTS = [47550, 47599];

/** The page side: every candidate gathered and every local SDP, kept in `window.__iceLog`. */
function recordCandidates() {
  const log = { candidates: [], sdps: [] };
  window.__iceLog = log;
  const Native = window.RTCPeerConnection;
  class Recorded extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('icecandidate', (e) => {
        if (e.candidate?.candidate) log.candidates.push(e.candidate.candidate);
      });
    }
    async setLocalDescription(...args) {
      const out = await super.setLocalDescription(...args);
      if (this.localDescription?.sdp) log.sdps.push(this.localDescription.sdp);
      return out;
    }
  }
  window.RTCPeerConnection = Recorded;
}

/** `candidate:… <address> <port> typ <type> …` → { address, type }. */
function parseCandidate(line) {
  const f = line.replace(/^a=/, '').replace(/^candidate:/, '').trim().split(/\s+/);
  return { address: f[4], type: f[7] };
}

/** Every candidate the page produced: trickled ones and those inside its SDPs. */
async function candidatesSent(page) {
  const log = await page.evaluate(() => window.__iceLog);
  const inSdp = log.sdps.flatMap((sdp) => sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')));
  return [...log.candidates, ...inSdp].map(parseCandidate);
}

/** The selected pair of the page's SFU connection: local and remote candidate types. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = await window.__talkconnect.pc.getStats();
    let out = null;
    stats.forEach((r) => {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
      const pair = stats.get(r.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      out = { local: local.candidateType, localAddress: local.address, remote: remote.candidateType };
    });
    return out;
  });
}


let browser;
let strictBrowser;
before(async () => {
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
  // No fake UI and no permission granted: getUserMedia is refused, the page joins to listen
  // only, and Chromium keeps its host addresses hidden behind mDNS names.
  strictBrowser = await launchBrowser({ extraArgs: MEDIA_ARGS, fakeUi: false });
});
after(async () => {
  await browser?.close();
  await strictBrowser?.close();
});

async function newPage(b, { relayOnly = false, record = false, contextOptions = {} } = {}) {
  const context = await b.newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US', ...contextOptions });
  if (relayOnly) await context.addInitScript(() => localStorage.setItem('talkconnect.relayOnly', '1'));
  if (record) await context.addInitScript(recordCandidates);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  return page;
}

/** An publishes from the permissive browser; Mai listens from the strict one. */
async function listenerReceives(server, shot, { relayOnly }) {
  const an = await newPage(browser, { relayOnly });
  await an.goto(server.url);
  await signInAsGuest(an, 'An publishes');
  const roomId = await createRoom(an, { title: `mDNS ${shot}` });
  const mai = await newPage(strictBrowser, { relayOnly, record: true, contextOptions: { permissions: [] } });
  await mai.goto(`${server.url}/r/${roomId}`);
  await signInAsGuest(mai, 'Mai listens');
  await mai.locator('.room .room-name').waitFor(LIVE);
  const notice = mai.getByTestId('media-notice');
  await notice.waitFor(MEDIA);
  assert.equal(await notice.getAttribute('data-notice'), 'media.listenOnlyDenied');
  const anId = await userId(an);
  const maiId = await userId(mai);
  await mai.locator(`.tile[data-user-id="${anId}"][data-video="on"] video`).waitFor(MEDIA);
  const flow = await expectFlowing(mai, [anId], { timeout: MEDIA.timeout });
  const sent = await candidatesSent(mai);
  const pair = await selectedPair(mai);
  console.log(`[mdns] ${shot}: sent ${JSON.stringify(sent)}; selected ${JSON.stringify(pair)}; ${JSON.stringify(flow.now)}`);
  await screenshot(mai, shot);
  await an.context().close();
  await mai.context().close();
  return { sent, pair, maiId };
}

describe('a client whose host candidates are mDNS names', () => {
  it('receives through the SFU, which learns its address from its checks', STEP, async () => {
    // The SFU's debug lines say which client candidates it ignored, and why.
    const server = await startServer({ env: { RUST_LOG: 'warn,talkconnect=info,talkconnect::sfu::room=debug' } });
    try {
      const { sent, pair, maiId } = await listenerReceives(server, 'mdns-sfu', { relayOnly: false });
      // No STUN or TURN server here: host candidates are all the page has, every one a name.
      assert.ok(sent.length > 0, 'no candidate was sent');
      for (const c of sent) {
        assert.equal(c.type, 'host', `a candidate other than host: ${JSON.stringify(c)}`);
        assert.match(c.address, /^[0-9a-f-]{36}\.local$/, `an unhidden host address: ${c.address}`);
      }
      const ignored = server.log().split('\n').filter((l) => l.includes('client candidate ignored') && l.includes(maiId));
      console.log(`[mdns] the SFU: ${ignored.join(' | ')}`);
      assert.ok(ignored.length > 0 && ignored.every((l) => /class=Mdns/.test(l)), 'the SFU did not see the .local candidates');
      // So the SFU had no address to check and learned the page's from the page's own checks;
      // the page's side of the pair is its host socket, or the address the SFU saw it from.
      assert.equal(pair?.remote, 'host', JSON.stringify(pair));
      assert.ok(['host', 'prflx'].includes(pair.local), `not a direct pair: ${JSON.stringify(pair)}`);
    } finally {
      await server.stop();
    }
  });

  it('receives relay-only through the TURN relay', STEP, async () => {
    const port = await freeUdpPort();
    const server = await startServer({
      env: {
        ...turnEnv({ port, relayPorts: RELAY_PORTS }),
      },
    });
    try {
      const { sent, pair } = await listenerReceives(server, 'mdns-relay', { relayOnly: true });
      assert.ok(sent.length > 0, 'no candidate was sent');
      for (const c of sent) assert.equal(c.type, 'relay', `a candidate other than relayed: ${JSON.stringify(c)}`);
      assert.equal(pair?.local, 'relay', JSON.stringify(pair));
    } finally {
      await server.stop();
    }
  });
});
