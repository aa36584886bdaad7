// Measures, in headless Chromium against the real binary, how long a person waits from the
// `room:join` ack (the seat is taken, over the socket) until the first remote video frame is
// decoded and shown (requestVideoFrameCallback), from the page's own timestamps
// (window.__talkconnect.marks). Not a test: prints every run and the medians.
//
//   cd web && TALKCONNECT_BIN=… RUNS=9 PUBLISHERS=1 node e2e/media-bench.mjs
//   cd web && TALKCONNECT_BIN=… RUNS=9 MODES=direct,relay,coturn node e2e/media-bench.mjs
//
// PUBLISHERS pages sit in the room with fake camera and microphone; a newcomer then opens
// the lobby (live connection up, signed in), clicks "Join", and is measured; it leaves and the
// next run starts with a fresh browser context. The span includes getUserMedia (fake devices:
// no prompt), `sfu:join`, the offer/answer, ICE + DTLS on loopback, the server's offer with
// the publishers' tracks and the keyframe request.
//
// MODES (default `direct`) names how the newcomer reaches the SFU, each run trying every mode
// in turn: `direct` (host candidates), `relay` (relay-only, through the TURN relay in the
// binary, over UDP), `coturn` (relay-only, through Debian's coturn, handed to the browser by
// `sfu.ice_servers` with its shared secret: a second server, since one page offered both
// relays would pick either). The publishers always connect directly.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  MEDIA_ARGS,
  createRoom,
  freeUdpPort,
  launchBrowser,
  sfuEnv,
  signInAsGuest,
  startServer,
  turnEnv,
} from './harness.mjs';

const RUNS = Number(process.env.RUNS ?? 9);
const PUBLISHERS = Number(process.env.PUBLISHERS ?? 1);
const MODES = (process.env.MODES ?? 'direct').split(',').map((m) => m.trim());
for (const mode of MODES) {
  if (!['direct', 'relay', 'coturn'].includes(mode)) throw new Error(`MODES: unknown mode ${mode} (direct, relay, coturn)`);
}
const SECRET = 'media-bench-turn-secret';

/** Debian's coturn on loopback: shared secret, loopback peers (the SFU) allowed, UDP only. */
async function startCoturn(dir) {
  if (spawnSync('sh', ['-c', 'command -v turnserver']).status !== 0) {
    throw new Error('turnserver is missing: apt-get install -y coturn (bench/turn/run.sh installs it)');
  }
  const port = await freeUdpPort();
  const child = spawn(
    'turnserver',
    [
      '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
      '--min-port=47540', '--max-port=47589', '--realm=talkconnect', '--use-auth-secret',
      `--static-auth-secret=${SECRET}`, '--allow-loopback-peers', '--no-tcp', '--no-tls', '--no-dtls',
      '--no-cli', `--userdb=${join(dir, 'turndb')}`, `--pidfile=${join(dir, 'turnserver.pid')}`,
      `--log-file=${join(dir, 'coturn.log')}`, '--simple-log',
    ],
    { stdio: 'ignore' },
  );
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) throw new Error(`turnserver exited with ${child.exitCode} (see ${dir}/coturn.log)`);
  return { port, stop: () => child.kill('SIGTERM') };
}

const tmp = mkdtempSync(join(tmpdir(), 'tc-media-bench-'));
const needsOurs = MODES.includes('direct') || MODES.includes('relay');
const turnPort = await freeUdpPort();
const servers = {};
let coturn;
if (needsOurs) {
  servers.ours = await startServer({
    env: {
      ...sfuEnv(47300, 47399),
      ...(MODES.includes('relay')
        ? {
            ...turnEnv({ port: turnPort, relayPorts: [47500, 47539], tcp: false }),
          }
        : {}),
    },
  });
}
if (MODES.includes('coturn')) {
  coturn = await startCoturn(tmp);
  const config = join(tmp, 'coturn-ice.toml');
  writeFileSync(
    config,
    `[sfu]\nice_servers = [{ urls = ["turn:127.0.0.1:${coturn.port}?transport=udp"], secret = "${SECRET}" }]\n`,
  );
  servers.coturn = await startServer({ env: sfuEnv(47400, 47499), args: ['--config', config] });
}
const serverOf = (mode) => (mode === 'coturn' ? servers.coturn : servers.ours);
const browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The selected candidate pair of the page's SFU connection: local type, relay protocol, port. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.__talkconnect?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let out = null;
    stats.forEach((r) => {
      if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
      const pair = stats.get(r.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      out = { local: local.candidateType, relayProtocol: local.relayProtocol ?? null, url: local.url ?? null };
    });
    return out;
  });
}

try {
  for (const server of Object.values(servers)) {
    let roomId;
    for (let i = 0; i < PUBLISHERS; i++) {
      const page = await (await browser.newContext({ locale: 'en-US' })).newPage();
      await page.goto(i === 0 ? server.url : `${server.url}/r/${roomId}`);
      await signInAsGuest(page, `Publisher ${i + 1}`);
      if (i === 0) roomId = await createRoom(page, { title: 'Bench room' });
      await page.waitForFunction(() => window.__talkconnect?.phase === 'connected', null, { timeout: 30000 });
    }
  }
  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of MODES) {
      const server = serverOf(mode);
      const res = await fetch(`${server.url}/api/auth/guest`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ displayName: `Newcomer ${run}` }),
      });
      const session = await res.json();
      const context = await browser.newContext({ locale: 'en-US' });
      await context.addInitScript(
        ({ value, relayOnly }) => {
          if (!localStorage.getItem('talkconnect.session')) localStorage.setItem('talkconnect.session', value);
          if (relayOnly) localStorage.setItem('talkconnect.relayOnly', '1');
        },
        { value: JSON.stringify(session), relayOnly: mode !== 'direct' },
      );
      const page = await context.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, { timeout: 15000 });
      await page.getByRole('button', { name: 'Join Bench room' }).click();
      await page.waitForFunction(
        (n) => Object.keys(window.__talkconnect?.marks.firstFrameOf ?? {}).length >= n,
        PUBLISHERS,
        { timeout: 30000 },
      );
      const m = await page.evaluate(() => ({ ...window.__talkconnect.marks }));
      const from = (t) => Math.round(t - m.roomJoinAck);
      const pair = await selectedPair(page);
      if (mode !== 'direct' && pair?.local !== 'relay') throw new Error(`${mode}: not relayed: ${JSON.stringify(pair)}`);
      const row = {
        run,
        mode,
        pair: pair ? `${pair.local}${pair.relayProtocol ? `/${pair.relayProtocol}` : ''}` : null,
        localMedia: from(m.localMedia),
        sfuJoinAck: from(m.sfuJoinAck),
        connected: from(m.connected),
        firstFrame: from(m.firstRemoteFrame),
        allFirstFrames: from(Math.max(...Object.values(m.firstFrameOf))),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
      await page.getByRole('button', { name: 'Leave' }).click();
      await page.getByRole('heading', { name: /Live rooms/ }).waitFor({ timeout: 10000 });
      await context.close();
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const keys = ['localMedia', 'sfuJoinAck', 'connected', 'firstFrame', 'allFirstFrames'];
  for (const mode of MODES) {
    const mine = rows.filter((r) => r.mode === mode);
    console.log(
      `${mode}: median over ${RUNS} runs, ${PUBLISHERS} publisher(s), ms after the room:join ack: ` +
        keys.map((k) => `${k} ${median(mine.map((r) => r[k]))}`).join(', ') +
        `; firstFrame min ${Math.min(...mine.map((r) => r.firstFrame))}, max ${Math.max(...mine.map((r) => r.firstFrame))}`,
    );
  }
} finally {
  await browser.close();
  for (const server of Object.values(servers)) await server.stop();
  coturn?.stop();
  rmSync(tmp, { recursive: true, force: true });
}
