// Helpers for the browser tests: the REAL server binary on a free port with a fresh SQLite
// database (started by the Node tests' shared harness, e2e/support/server.mjs), and Debian's
// headless Chromium driven by playwright-core (no browser download).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { freePort, sfuEnv, spawnServer, startServer as startTestServer, tempDir } from '../../e2e/support/server.mjs';

export { sfuEnv };

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

/**
 * A voice for the fake microphones (16-bit mono WAV, 2 s, looped by Chromium). Chromium's
 * own fake microphone only beeps for a few milliseconds now and then, which a speaking
 * indicator sampling ten times a second catches by chance.
 */
function fakeVoiceFile() {
  const rate = 48000;
  const samples = rate * 2;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  // Syllables: 300 ms of a tone gliding 180 → 420 Hz, then 200 ms of silence. A steady tone
  // would be taken for noise and suppressed by the browser's audio processing.
  let phase = 0;
  for (let i = 0; i < samples; i++) {
    const inSyllable = (i % (rate / 2)) / rate; // seconds into the current 500 ms
    const on = inSyllable < 0.3;
    phase += (2 * Math.PI * (180 + 800 * inSyllable)) / rate;
    const value = on ? 0.5 * Math.sin(phase) * Math.sin((Math.PI * inSyllable) / 0.3) : 0;
    wav.writeInt16LE(Math.round(value * 32767), 44 + i * 2);
  }
  const file = join(tempDir('tc-voice-'), 'voice.wav');
  writeFileSync(file, wav);
  return file;
}

/**
 * A Y4M clip of random noise for Chromium's fake camera (`--use-file-for-fake-video-capture`,
 * looped): hard to compress, so the encoder sends what its estimate and limits allow (Chromium's
 * own fake camera compresses to under 200 kbit/s).
 */
export function noiseClip({ width, height, fps, frames }) {
  const file = join(tempDir('tc-noise-'), 'noise.y4m');
  const fd = openSync(file, 'w');
  writeSync(fd, `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const frame = Buffer.alloc((width * height * 3) / 2);
  let seed = 7;
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < frame.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      frame[i] = seed >> 16;
    }
    writeSync(fd, 'FRAME\n');
    writeSync(fd, frame);
  }
  closeSync(fd);
  return file;
}

/** For media tests: Chromium gathers no candidate on loopback without the first flag; the
 * second gives the fake microphones a steady voice. */
export const MEDIA_ARGS = ['--allow-loopback-in-peer-connection', `--use-file-for-fake-audio-capture=${fakeVoiceFile()}`];

/**
 * The server for browser tests (e2e/support/server.mjs: a free port, a fresh SQLite data dir,
 * the SFU on loopback in a UDP block of its own, stop({ keepData }) and kill()), with ICE over
 * TCP off as these tests have always run it: the browsers' media over UDP only. `dataDir`
 * and `port` restart a server stopped with keepData.
 */
export function startServer({ env = {}, ...options } = {}) {
  return startTestServer({ ...options, env: { TALKCONNECT__SFU__ICE_TCP: 'false', ...env } });
}

/** A free UDP port on loopback (a TURN relay's listening port; its TCP twin is checked by
 * the server's own bind). */
export async function freeUdpPort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = createSocket('udp4');
      s.on('error', reject);
      s.bind(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
    // Not one of the ranges the tests name (media blocks 41000-46999, relay and SFU ranges
    // 47000-47999): a TURN port inside its own relay range is refused at start.
    if (port < 41000 || port > 47999) return port;
  }
}

/** Settings for the binary's TURN relay on loopback: listening on `port` (UDP and/or TCP),
 * relayed addresses on `relayPorts`. */
export function turnEnv({ port, relayPorts, udp = true, tcp = true }) {
  return {
    TALKCONNECT__TURN__ENABLED: 'true',
    TALKCONNECT__TURN__LISTEN_IP: '127.0.0.1',
    TALKCONNECT__TURN__UDP_PORT: udp ? String(port) : '0',
    TALKCONNECT__TURN__TCP_PORT: tcp ? String(port) : '0',
    TALKCONNECT__TURN__RELAY_PORT_MIN: String(relayPorts[0]),
    TALKCONNECT__TURN__RELAY_PORT_MAX: String(relayPorts[1]),
  };
}

/**
 * Debian's coturn on loopback with a shared secret (use-auth-secret: the TURN REST API form the
 * binary mints per-user credentials in), relaying on UDP `relayPorts`. Answers its URL, the
 * `--config FILE` arguments that list it in the binary's sfu.ice_servers with the secret, and
 * stop().
 */
export async function startCoturn({ relayPorts, secret = 'coturn-shared-secret' }) {
  const port = await freePort();
  const dir = tempDir('tc-coturn-');
  const turn = await spawnServer(
    process.env.TURNSERVER_PATH ?? '/usr/bin/turnserver',
    [
      '-n',
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      `--min-port=${relayPorts[0]}`,
      `--max-port=${relayPorts[1]}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      '--realm=talkconnect.test',
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      '--fingerprint',
      // The SFU and the browsers are on loopback too.
      '--allow-loopback-peers',
      `--userdb=${join(dir, 'turndb')}`,
      `--pidfile=${join(dir, 'turnserver.pid')}`,
      '--log-file=stdout',
      '--simple-log',
    ],
    { name: 'turnserver', dir, ready: /IO method \(admin thread\)/ },
  );
  const url = `turn:127.0.0.1:${port}?transport=udp`;
  const config = join(tempDir('tc-coturn-config-'), 'turn.toml');
  writeFileSync(config, `[sfu]\nice_servers = [{ urls = ["${url}"], secret = "${secret}" }]\n`);
  return { url, configArgs: ['--config', config], ...turn };
}

/** The Chromium binary the tests run: $CHROMIUM_PATH, else Debian's. */
export function chromiumPath() {
  const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install -y chromium`);
  return path;
}

/** Headless Chromium; `home` gives it another home folder (its NSS certificate store is
 * `home/.pki/nssdb`); `executablePath` runs another program in its place (a wrapper that
 * starts chromiumPath() in a network namespace). */
export async function launchBrowser({ extraArgs = [], fakeUi = true, home, executablePath = chromiumPath() } = {}) {
  const args = CHROMIUM_ARGS.filter((a) => fakeUi || a !== '--use-fake-ui-for-media-stream');
  const env = home ? { ...process.env, HOME: home } : undefined;
  return chromium.launch({ executablePath, headless: true, args: [...args, ...extraArgs], env });
}

/** Does the server speak Engine.IO at /socket.io/ (the realtime server is mounted)? */
export async function realtimeAvailable(url) {
  try {
    const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
    const text = await res.text();
    return res.ok && text.startsWith('0{');
  } catch {
    return false;
  }
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Signs in as a guest from the form on the current page. */
export async function signInAsGuest(page, name) {
  await page.getByLabel(/Display name|Tên hiển thị/).first().fill(name);
  await page.getByRole('button', { name: /Continue as guest|Vào với tư cách khách/ }).click();
  await page.locator('.whoami-name', { hasText: name }).waitFor({ timeout: 10000 });
}

/** The signed-in user's id, as the page keeps it in localStorage. */
export const userIdOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);

/**
 * What replicas of a cluster share, for one test file: a fresh PostgreSQL database, a Redis
 * key prefix and a JWT secret. `skip` says why the file cannot run (under CI=true a missing
 * service fails instead); `env(node)` is a replica's settings; `create()` and `drop()` make
 * and remove the database and the keys; `mediaOwner(roomId)` is the instance id that serves a
 * room's media (Redis). `needs` names other commands the file needs (nginx).
 */
export function sharedServices(label, { needs = [] } = {}) {
  const pg = process.env.TALKCONNECT_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
  const redis = process.env.TALKCONNECT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const up =
    spawnSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q']).status === 0 &&
    spawnSync('redis-cli', ['ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG' &&
    needs.every((cmd) => spawnSync(cmd, ['-v']).status === 0);
  const missing = `PostgreSQL, Redis${needs.map((n) => `, ${n}`).join('')}`;
  if (!up && process.env.CI === 'true') throw new Error(`${missing} needed (scripts/services, scripts/test)`);
  const db = `tc_${label}_${randomUUID().slice(0, 8)}`;
  const prefix = `tc-test:${db}:`;
  const secret = randomUUID();
  return {
    skip: up ? false : `${missing}: one is missing (scripts/services)`,
    env: (node) => ({
      TALKCONNECT__DATABASE__URL: `${pg}/${db}`,
      TALKCONNECT__REDIS__URL: redis,
      TALKCONNECT__REDIS__KEY_PREFIX: prefix,
      TALKCONNECT__AUTH__JWT_SECRET: secret,
      TALKCONNECT__CLUSTER__NODE_ID: node,
    }),
    create() {
      const created = spawnSync('psql', [`${pg}/postgres`, '-q', '-c', `CREATE DATABASE ${db}`], { encoding: 'utf8' });
      if (created.status !== 0) throw new Error(created.stderr);
    },
    mediaOwner: (roomId) => spawnSync('redis-cli', ['get', `${prefix}sfu:owner:${roomId}`], { encoding: 'utf8' }).stdout.trim(),
    drop() {
      spawnSync('psql', [`${pg}/postgres`, '-q', '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
      const keys = spawnSync('redis-cli', ['--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      if (keys.length) spawnSync('redis-cli', ['del', ...keys]);
    },
  };
}

/** A new browser context's page at `url` (a room's page with `roomId`), signed in as a guest. */
export async function guestPage(browser, url, name, roomId) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(roomId ? `${url}/r/${roomId}` : url);
  await signInAsGuest(page, name);
  if (roomId) await page.locator('.room .room-name').waitFor({ timeout: 15000 });
  return page;
}

/** Calls the REST API with the token the page keeps in localStorage. */
export async function apiAs(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const session = JSON.parse(localStorage.getItem('talkconnect.session') ?? 'null');
      const res = await fetch(path, {
        method,
        headers: {
          ...(session ? { Authorization: `Bearer ${session.token}` } : {}),
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    },
    { method, path, body },
  );
}

export async function createRoom(page, { title, topic = '', seats } = {}) {
  await page.getByRole('button', { name: /^(Create a room|Tạo phòng)$/ }).first().click();
  const dialog = page.locator('dialog[open]');
  await dialog.getByLabel(/^(Title|Tên phòng)$/).fill(title);
  if (topic) await dialog.getByLabel(/^(Topic|Chủ đề)$/).fill(topic);
  if (seats) await dialog.getByLabel(/^(Seats|Số chỗ)$/).selectOption(String(seats));
  await dialog.getByRole('button', { name: /Create and enter|Tạo và vào phòng/ }).click();
  await page.waitForURL(/\/r\/[0-9a-f-]{36}$/, { timeout: 10000 });
  await page.locator('.room .room-name', { hasText: title }).waitFor({ timeout: 10000 });
  return page.url().split('/r/')[1];
}

/** Per remote publisher: video frames decoded and audio bytes received (getStats in the page,
 * over the SFU's one peer connection or, in mesh mode, every peer connection). */
export function remoteStats(page) {
  return page.evaluate(async () => {
    const tc = window.__talkconnect;
    const pcs = tc?.pc ? [tc.pc] : Object.values(tc?.peers ?? {});
    if (pcs.length === 0) return {};
    const byTrack = {};
    for (const pc of pcs) {
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') {
          byTrack[r.trackIdentifier] = { framesDecoded: r.framesDecoded ?? 0, bytesReceived: r.bytesReceived ?? 0 };
        }
      });
    }
    const out = {};
    for (const [id, t] of Object.entries(tc.remote)) {
      out[id] = {
        framesDecoded: t.video ? (byTrack[t.video]?.framesDecoded ?? 0) : null,
        audioBytes: t.audio ? (byTrack[t.audio]?.bytesReceived ?? 0) : null,
      };
    }
    return out;
  });
}

/** Mesh mode: bytes of audio we send to each other participant (outbound-rtp, getStats). */
export function meshAudioSent(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const [id, pc] of Object.entries(window.__talkconnect?.peers ?? {})) {
      out[id] = 0;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'audio') out[id] += r.bytesSent ?? 0;
      });
    }
    return out;
  });
}

/**
 * Waits until two samples a second apart show every listed publisher's media arriving:
 * video frames decoded rising (`video: true`) and audio bytes rising (`audio: true`).
 * Returns the two samples (printed for the report).
 */
export async function expectFlowing(page, publishers, { video = true, audio = true, timeout = 30000 } = {}) {
  const deadline = Date.now() + timeout;
  let before = await remoteStats(page);
  let last;
  while (Date.now() < deadline) {
    await page.waitForTimeout(1000);
    const now = await remoteStats(page);
    const ok = publishers.every((id) => {
      const a = before[id];
      const b = now[id];
      if (!a || !b) return false;
      if (video && !(b.framesDecoded > a.framesDecoded && a.framesDecoded > 0)) return false;
      if (audio && !(b.audioBytes > a.audioBytes && a.audioBytes > 0)) return false;
      return true;
    });
    last = { before, now };
    if (ok) return last;
    before = now;
  }
  assert.fail(`media not flowing from ${publishers.join(', ')}: ${JSON.stringify(last)}`);
}
