// Audio and video across replicas: two replicas of the binary on one PostgreSQL database and
// one Redis, browsers on both. The room's SFU lives on the replica that claimed it first; a
// browser whose socket is on the other replica still gets its media from there. When that
// replica is killed, the browsers left reconnect their media to the replica that takes the
// room over.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  MEDIA_ARGS,
  createRoom,
  expectFlowing,
  launchBrowser,
  screenshot,
  sfuEnv,
  signInAsGuest,
  startServer,
} from './harness.mjs';

const PG = process.env.TALKCONNECT_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS = process.env.TALKCONNECT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const STEP = { timeout: 180000 };
const LIVE = { timeout: 15000 };

function servicesUp() {
  const pg = spawnSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q']).status === 0;
  const redis = spawnSync('redis-cli', ['ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG';
  if (pg && redis) return true;
  if (process.env.CI === 'true') throw new Error('PostgreSQL and Redis are needed (scripts/services)');
  return false;
}

const skip = servicesUp() ? false : 'PostgreSQL or Redis not running (scripts/services)';
const db = `tc_media_${randomUUID().slice(0, 8)}`;
const prefix = `tc-test:${db}:`;
const secret = randomUUID();
const replicas = [];
let browser;

function replicaEnv(name, portMin) {
  return {
    TALKCONNECT__DATABASE__URL: `${PG}/${db}`,
    TALKCONNECT__REDIS__URL: REDIS,
    TALKCONNECT__REDIS__KEY_PREFIX: prefix,
    TALKCONNECT__AUTH__JWT_SECRET: secret,
    TALKCONNECT__CLUSTER__NODE_ID: name,
    TALKCONNECT__CLUSTER__MEDIA_LEASE_SECS: '3',
    TALKCONNECT__CLUSTER__PRESENCE_TTL_SECS: '3',
    ...sfuEnv(portMin, portMin + 49),
  };
}

before(async () => {
  if (skip) return;
  const created = spawnSync('psql', [`${PG}/postgres`, '-q', '-c', `CREATE DATABASE ${db}`], { encoding: 'utf8' });
  if (created.status !== 0) throw new Error(created.stderr);
  browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
});

after(async () => {
  await browser?.close();
  for (const r of replicas) await r.stop();
  if (skip) return;
  spawnSync('psql', [`${PG}/postgres`, '-q', '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
  const keys = spawnSync('redis-cli', ['--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  if (keys.length) spawnSync('redis-cli', ['del', ...keys]);
});

async function enter(server, name, roomId) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US' });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(roomId ? `${server.url}/r/${roomId}` : server.url);
  await signInAsGuest(page, name);
  if (roomId) await page.locator('.room .room-name').waitFor(LIVE);
  return page;
}

const userId = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('talkconnect.session')).user.id);

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

    const owner = spawnSync('redis-cli', ['get', `${prefix}sfu:owner:${roomId}`], { encoding: 'utf8' }).stdout.trim();
    assert.match(owner, /^media-a#/, 'the replica that started the room serves its media');
    await expectFlowing(first, [ids.host, ids.second]);
    await expectFlowing(host, [ids.first, ids.second]);
    await screenshot(first, 'cluster-media-two-replicas');

    // A dies: its lease runs out, B takes the room over, the two left renegotiate with it.
    await a.kill();
    await expectFlowing(first, [ids.second], { timeout: 60000 });
    await expectFlowing(second, [ids.first], { timeout: 60000 });
    const next = spawnSync('redis-cli', ['get', `${prefix}sfu:owner:${roomId}`], { encoding: 'utf8' }).stdout.trim();
    assert.match(next, /^media-b#/, 'the surviving replica took the room over');
    await screenshot(second, 'cluster-media-after-failover');
  });
});
