// Browsers on other networks than the server's, made of network namespaces and veth pairs
// (root only; iproute2 and nftables):
//
//   tcn-server 203.0.113.10 ── 203.0.113.1 tcn-router ─┬─ 192.168.77.1 ── 192.168.77.10 tcn-nat
//   (the binary: HTTPS + TURN/TLS on 443,              │   (a home network: NAT only)
//    SFU and TURN on its veth address, no loopback)    └─ 192.168.78.1 ── 192.168.78.10 tcn-fw
//                                                          (an office network: NAT, and only
//                                                           TCP 443 to the server lets out)
//
// The router masquerades both private networks (nftables, postrouting), so the server never
// sees a private address and cannot reach one; tcn-fw's own output chain drops everything but
// TCP to 203.0.113.10:443, all UDP included. Chromium runs inside a client namespace (a wrapper
// script: `ip netns exec … chromium`, driven over playwright's pipe) and trusts the server's
// certificate through its NSS store. Asserted:
// - behind NAT, two people in one room see and hear each other through the SFU over UDP;
// - behind the firewall, the page, the websocket and the media all come over 443: the media
//   through TURN over TLS on the HTTPS port, while the firewall drops the UDP the browser tries.
// Every namespace is removed at the end, and first thing, leftovers of a crashed run (tcn-*).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { tempDir } from '../../e2e/support/server.mjs';
import {
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  launchBrowser,
  screenshot,
  signInAsGuest,
  startServer,
  userIdOf as userId,
} from './harness.mjs';
import { addNamespace, chromiumIn, inNs, link, nft, removeNamespaces } from './namespaces.mjs';

const STEP = { timeout: 120000 };
const LIVE = { timeout: 10000 };
const MEDIA = { timeout: 45000 };
const NAME = 'talk.test';
const SERVER_IP = '203.0.113.10';
const ROUTER_PUBLIC_IP = '203.0.113.1';
const NS = { server: 'tcn-server', router: 'tcn-router', nat: 'tcn-nat', fw: 'tcn-fw' };
const PREFIX = 'tcn-';
const SITE = `https://${NAME}/`;
const SKIP = process.getuid?.() === 0 ? false : 'network namespaces need root';

/** Packets a named nftables counter has seen in `ns`. */
function counted(ns, family, table, counter) {
  const out = inNs(ns, 'nft', 'list', 'counter', family, table, counter);
  const match = /packets (\d+)/.exec(out);
  assert.ok(match, `no packet count in: ${out}`);
  return Number(match[1]);
}

const removeTopology = () => removeNamespaces(PREFIX);

function buildTopology() {
  for (const ns of Object.values(NS)) addNamespace(ns);
  link(NS.server, 'tcn-s', `${SERVER_IP}/24`, NS.router, 'tcn-rs', `${ROUTER_PUBLIC_IP}/24`);
  link(NS.nat, 'tcn-n', '192.168.77.10/24', NS.router, 'tcn-rn', '192.168.77.1/24');
  link(NS.fw, 'tcn-f', '192.168.78.10/24', NS.router, 'tcn-rf', '192.168.78.1/24');
  inNs(NS.nat, 'ip', 'route', 'add', 'default', 'via', '192.168.77.1');
  inNs(NS.fw, 'ip', 'route', 'add', 'default', 'via', '192.168.78.1');
  // The server gets no route to the private networks: only the router's public address.
  // /proc/sys/net is the writing process's namespace's (no procps needed for sysctl).
  inNs(NS.router, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward');
  nft(
    NS.router,
    `table ip tcn_nat {
      counter masqueraded_udp {}
      chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "tcn-rs" meta l4proto udp counter name "masqueraded_udp" masquerade
        oifname "tcn-rs" masquerade
      }
    }`,
  );
  nft(
    NS.fw,
    `table inet tcn_fw {
      counter dropped_udp {}
      chain output {
        type filter hook output priority filter; policy drop;
        oif "lo" accept
        ct state established,related accept
        ip daddr ${SERVER_IP} tcp dport 443 accept
        meta l4proto udp counter name "dropped_udp" drop
      }
    }`,
  );
}

const dir = tempDir('tc-netns-');
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A CA, a certificate for NAME that it signed, and a home folder whose NSS store trusts it.
 * The certificate names the server's address too: Chromium (156) checks a turns: server's
 * certificate against the address it resolved the name to (net_error -200, name invalid,
 * with the name alone, whether resolved by --host-resolver-rules or by /etc/hosts), while the
 * page's HTTPS is checked against the name. */
function certificates() {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=TalkConnect netns test CA', '-addext',
    'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key',
    '-out', 'server.csr', '-subj', `/CN=${NAME}`);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:${NAME},IP:${SERVER_IP}\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-out', 'server.crt', '-extfile', 'server.ext');
  const home = join(dir, 'home');
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'TalkConnect netns test CA', '-t', 'C,,', '-i', join(dir, 'ca.crt')]);
  return home;
}

/** Chromium in network namespace `ns`: a wrapper script in its place, the pipe to playwright
 * kept across `ip netns exec`. NAME resolves to the server's address. */
function browserIn(ns, home) {
  return launchBrowser({
    executablePath: chromiumIn(ns, dir),
    home,
    extraArgs: [...MEDIA_ARGS, `--host-resolver-rules=MAP ${NAME} ${SERVER_IP}`],
  });
}

let server;
let home;
const browsers = {};

before(async () => {
  if (SKIP) return;
  removeTopology();
  buildTopology();
  home = certificates();
  server = await startServer({
    netns: NS.server,
    port: 443,
    env: {
      TALKCONNECT__SERVER__HOST: SERVER_IP,
      TALKCONNECT__SERVER__TLS__MODE: 'files',
      TALKCONNECT__SERVER__TLS__CERT_FILE: join(dir, 'server.crt'),
      TALKCONNECT__SERVER__TLS__KEY_FILE: join(dir, 'server.key'),
      TALKCONNECT__SFU__BIND_IP: SERVER_IP,
      TALKCONNECT__SFU__ALLOW_LOOPBACK: 'false',
      TALKCONNECT__SFU__ICE_TCP: 'true',
      TALKCONNECT__SFU__UDP_PORT_MIN: '40000',
      TALKCONNECT__SFU__UDP_PORT_MAX: '40019',
      TALKCONNECT__TURN__ENABLED: 'true',
      TALKCONNECT__TURN__LISTEN_IP: SERVER_IP,
      TALKCONNECT__TURN__ON_HTTPS_PORT: 'true',
    },
  });
  browsers.nat = await browserIn(NS.nat, home);
  browsers.fw = await browserIn(NS.fw, home);
});

after(async () => {
  if (SKIP) return;
  for (const browser of Object.values(browsers)) await browser.close().catch(() => {});
  await server?.stop();
  removeTopology();
});

async function personIn(network, name) {
  const context = await browsers[network].newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error ${network}] ${err.message}`));
  const websockets = [];
  page.on('websocket', (ws) => websockets.push(ws.url()));
  const failures = [];
  page.on('requestfailed', (r) => failures.push(`${r.url()}: ${r.failure()?.errorText}`));
  return { page, name, websockets, failures };
}


/** The selected candidate pair of the page's SFU connection: both ends' type, address and
 * protocol (the local one's relayProtocol when it is a relay), and its round trip (logged). */
function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = await window.__talkconnect.pc.getStats();
    let out = null;
    stats.forEach((r) => {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
      const pair = stats.get(r.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      out = {
        local: { type: local.candidateType, address: local.address, protocol: local.protocol, relayProtocol: local.relayProtocol },
        remote: { type: remote.candidateType, address: remote.address, port: remote.port, protocol: remote.protocol },
        rttMs: pair.currentRoundTripTime === undefined ? null : Math.round(pair.currentRoundTripTime * 1000),
      };
    });
    return out;
  });
}

/** The ICE servers the signed-in page is offered (GET /api/ice-servers). */
const iceServers = (page) =>
  page.evaluate(async () => {
    const session = JSON.parse(localStorage.getItem('talkconnect.session'));
    const res = await fetch('/api/ice-servers', { headers: { Authorization: `Bearer ${session.token}` } });
    return (await res.json()).iceServers;
  });

/** `host` opens a room, `guest` joins it by its link; both see and hear each other. */
async function call(host, guest, title, { signedIn = async () => {} } = {}) {
  await host.page.goto(SITE);
  await signInAsGuest(host.page, host.name);
  await signedIn(host.page);
  const roomId = await createRoom(host.page, { title });
  const joined = Date.now();
  await guest.page.goto(`${SITE}r/${roomId}`);
  await signInAsGuest(guest.page, guest.name);
  await guest.page.locator('.room .room-name').waitFor(LIVE);
  const ids = { host: await userId(host.page), guest: await userId(guest.page) };
  await guest.page.locator(`.tile[data-user-id="${ids.host}"][data-video="on"] video`).waitFor(MEDIA);
  await expectFlowing(host.page, [ids.guest], { timeout: MEDIA.timeout });
  await expectFlowing(guest.page, [ids.host], { timeout: MEDIA.timeout });
  console.log(`[netns] ${title}: from the guest's page load to media both ways in ${Date.now() - joined} ms`);
}

describe('browsers on other networks than the server', { skip: SKIP }, () => {
  it('behind NAT: media flows through the SFU over UDP, from private addresses rewritten', STEP, async () => {
    const an = await personIn('nat', 'An at home');
    const binh = await personIn('nat', 'Bình at home');
    const masqueradedBefore = counted(NS.router, 'ip', 'tcn_nat', 'masqueraded_udp');
    await call(an, binh, 'Behind NAT');
    for (const person of [an, binh]) {
      const pair = await selectedPair(person.page);
      console.log(`[netns] ${person.name}: ${JSON.stringify(pair)}`);
      // Straight to the SFU over UDP, not relayed: from the private address (host) or from
      // the address the NAT rewrote it to, as the TURN server's STUN answer told (srflx) or
      // the SFU's answer to the browser's check told first (prflx: the two race).
      assert.equal(pair.local.protocol, 'udp', JSON.stringify(pair));
      if (pair.local.type === 'host') assert.match(pair.local.address ?? '', /^192\.168\.77\./, JSON.stringify(pair));
      else {
        assert.ok(['srflx', 'prflx'].includes(pair.local.type), JSON.stringify(pair));
        assert.equal(pair.local.address, ROUTER_PUBLIC_IP, JSON.stringify(pair));
      }
      assert.equal(pair.remote.address, SERVER_IP, JSON.stringify(pair));
      assert.deepEqual(person.failures, []);
    }
    // The media left through the router's masquerade, not around it.
    assert.ok(counted(NS.router, 'ip', 'tcn_nat', 'masqueraded_udp') > masqueradedBefore, 'no UDP flow was masqueraded');
    await screenshot(binh.page, 'netns-nat');
    await an.page.context().close();
    await binh.page.context().close();
  });

  it('a network that only lets TCP 443 out: the page and the websocket come over 443', STEP, async () => {
    const an = await personIn('fw', 'An at the office');
    await an.page.goto(SITE);
    await signInAsGuest(an.page, an.name);
    await createRoom(an.page, { title: 'Office lobby' });
    await an.page.locator('.tile', { hasText: an.name }).waitFor(LIVE);
    const chat = an.page.getByRole('textbox', { name: 'Message' });
    await chat.fill('Through the office firewall');
    await an.page.getByRole('button', { name: 'Send' }).click();
    await an.page.locator('.chat-message', { hasText: 'Through the office firewall' }).waitFor(LIVE);
    assert.ok(
      an.websockets.some((url) => url.startsWith(`wss://${NAME}/socket.io/`)),
      `a websocket over TLS on 443: ${an.websockets.join(', ')}`,
    );
    assert.deepEqual(an.failures, []);
    await an.page.context().close();
  });

  it('a network that only lets TCP 443 out: media flows through TURN over TLS on 443', STEP, async () => {
    const an = await personIn('fw', 'An at the office');
    const binh = await personIn('nat', 'Bình at home');
    const droppedBefore = counted(NS.fw, 'inet', 'tcn_fw', 'dropped_udp');
    // The relay on the HTTPS port, by the name the browser reached the server by.
    const offered = async (page) => {
      const urls = (await iceServers(page)).flatMap((server) => server.urls);
      assert.ok(urls.includes(`turns:${NAME}:443?transport=tcp`), `no TURN over TLS on 443 offered: ${urls.join(', ')}`);
    };
    await call(an, binh, 'Only 443', { signedIn: offered });
    const pair = await selectedPair(an.page);
    console.log(`[netns] ${an.name}: ${JSON.stringify(pair)}`);
    assert.equal(pair.local.type, 'relay', JSON.stringify(pair));
    // Only turns: on 443 gets through this firewall.
    assert.equal(pair.local.relayProtocol, 'tls', JSON.stringify(pair));
    // The browser did try UDP (host candidates, TURN/UDP), and the firewall dropped it.
    assert.ok(counted(NS.fw, 'inet', 'tcn_fw', 'dropped_udp') > droppedBefore, 'the firewall dropped no UDP');
    assert.deepEqual(an.failures, []);
    await screenshot(an.page, 'netns-443-only');
    await an.page.context().close();
    await binh.page.context().close();
  });
});
