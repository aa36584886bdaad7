// Measures what one subscriber's browser gets on a bad downlink: video frames decoded per
// second, freezes (count and total time) and audio concealment, from Chromium's own getStats.
// Not a test: prints one line per condition and a Markdown table (docs/BENCHMARKS.md).
//
//   cd web && TALKCONNECT_BIN=… node e2e/quality-bench.mjs
//   cd web && TALKCONNECT_BIN=… LABEL=no-buffer \
//     SERVER_ENV='{"TALKCONNECT__SFU__RETRANSMISSION_BUFFER_MS":"0"}' node e2e/quality-bench.mjs
//
// Two network namespaces joined by a veth pair (root only; iproute2, nftables, tc):
//
//   tcq-srv 10.77.0.1  ── 10.77.0.2 tcq-sub
//   (the binary, and the publishing       (the subscriber's Chromium: the condition is
//    Chromium on the same address)          applied to what reaches it)
//
// CONDITIONS (default `0,2,5,300k`) are applied one after another to the subscriber's
// downlink: `N` drops N % of the UDP datagrams it receives (nftables `numgen random`, input
// hook in tcq-sub), `Nk` shapes everything the server side sends it to N kbit/s (`tc tbf` on
// tcq-srv's end of the veth). For each, a fresh subscriber page joins the publisher's room,
// waits WARMUP seconds (default 5), then measures for SECONDS (default 20). The page origin is
// plain http, treated as secure by a Chromium flag so the fake devices work. The publisher's
// camera plays a generated clip of moving random blocks (Chromium's own fake camera compresses
// to under 200 kbit/s, which no bad link here would touch); VIDEO=fake uses Chromium's.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { tempDir } from '../../e2e/support/server.mjs';
import { MEDIA_ARGS, chromiumPath, createRoom, launchBrowser, signInAsGuest, startServer, userIdOf } from './harness.mjs';

const CONDITIONS = (process.env.CONDITIONS ?? '0,2,5,300k').split(',').map((c) => c.trim());
const WARMUP = Number(process.env.WARMUP ?? 5);
const SECONDS = Number(process.env.SECONDS ?? 20);
const LABEL = process.env.LABEL ?? 'default';
const SERVER_ENV = JSON.parse(process.env.SERVER_ENV ?? '{}');
const NS = { srv: 'tcq-srv', sub: 'tcq-sub' };
const SERVER_IP = '10.77.0.1';
const SUB_IP = '10.77.0.2';
const PORT = 8080;
const SITE = `http://${SERVER_IP}:${PORT}`;

if (!process.env.PATH?.split(':').includes('/usr/sbin')) process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const run = (cmd, ...args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (ns, cmd, ...args) => run('ip', 'netns', 'exec', ns, cmd, ...args);

function removeTopology() {
  for (const line of run('ip', 'netns', 'list').split('\n')) {
    const name = line.split(' ')[0];
    if (!Object.values(NS).includes(name)) continue;
    for (const pid of run('ip', 'netns', 'pids', name).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    run('ip', 'netns', 'del', name);
  }
}

function buildTopology() {
  for (const ns of Object.values(NS)) {
    run('ip', 'netns', 'add', ns);
    inNs(ns, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6');
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  run('ip', 'link', 'add', 'tcq-s', 'netns', NS.srv, 'type', 'veth', 'peer', 'name', 'tcq-c', 'netns', NS.sub);
  inNs(NS.srv, 'ip', 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'tcq-s');
  inNs(NS.sub, 'ip', 'addr', 'add', `${SUB_IP}/24`, 'dev', 'tcq-c');
  inNs(NS.srv, 'ip', 'link', 'set', 'tcq-s', 'up');
  inNs(NS.sub, 'ip', 'link', 'set', 'tcq-c', 'up');
}

function applyCondition(condition) {
  const rate = /^(\d+)k$/.exec(condition);
  if (rate) {
    inNs(NS.srv, 'tc', 'qdisc', 'replace', 'dev', 'tcq-s', 'root', 'tbf', 'rate', `${rate[1]}kbit`, 'burst', '16kbit', 'latency', '300ms');
    return;
  }
  const loss = Number(condition);
  if (!Number.isInteger(loss) || loss < 0 || loss > 100) throw new Error(`CONDITIONS: ${condition} is neither N (loss %) nor Nk (kbit/s)`);
  if (loss === 0) return;
  execFileSync('ip', ['netns', 'exec', NS.sub, 'nft', '-f', '-'], {
    input: `table inet tcq_loss {
      chain input {
        type filter hook input priority filter; policy accept;
        meta l4proto udp numgen random mod 100 < ${loss} drop
      }
    }`,
  });
}

function clearCondition() {
  try {
    inNs(NS.srv, 'tc', 'qdisc', 'del', 'dev', 'tcq-s', 'root');
  } catch {
    // No shaping was set.
  }
  try {
    inNs(NS.sub, 'nft', 'delete', 'table', 'inet', 'tcq_loss');
  } catch {
    // No loss was set.
  }
}

const dir = tempDir('tc-quality-');

/** A 2 s, 640x360, 15 fps Y4M clip of random grey (pairs of pixels) that changes every frame
 * (hard to compress: the encoder spends what its estimate allows). */
function noiseClip() {
  const [w, h, fps, frames] = [640, 360, 15, 30];
  const file = join(dir, 'noise.y4m');
  const fd = openSync(file, 'w');
  writeSync(fd, `YUV4MPEG2 W${w} H${h} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const frame = Buffer.alloc((w * h * 3) / 2, 128);
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed >> 16;
  };
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < w * h; i += 2) {
      const value = random() & 0xff;
      frame[i] = value;
      frame[i + 1] = value;
    }
    writeSync(fd, 'FRAME\n');
    writeSync(fd, frame);
  }
  closeSync(fd);
  return file;
}
const VIDEO_ARGS = process.env.VIDEO === 'fake' ? [] : [`--use-file-for-fake-video-capture=${noiseClip()}`];

function browserIn(ns) {
  const wrapper = join(dir, `chromium-${ns}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${chromiumPath()} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return launchBrowser({
    executablePath: wrapper,
    extraArgs: [...MEDIA_ARGS, ...VIDEO_ARGS, `--unsafely-treat-insecure-origin-as-secure=${SITE}`],
  });
}

/** The subscriber's receiving counters for one publisher (getStats). */
function snapshot(page, publisher) {
  return page.evaluate(async (publisher) => {
    const tc = window.__talkconnect;
    const remote = tc.remote[publisher] ?? {};
    const out = { at: performance.now(), video: null, audio: null };
    (await tc.pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.trackIdentifier === remote.video) {
        out.video = {
          framesDecoded: r.framesDecoded ?? 0,
          freezeCount: r.freezeCount ?? 0,
          totalFreezesDuration: r.totalFreezesDuration ?? 0,
          packetsLost: r.packetsLost ?? 0,
          packetsReceived: r.packetsReceived ?? 0,
          nackCount: r.nackCount ?? 0,
          bytesReceived: r.bytesReceived ?? 0,
          frameHeight: r.frameHeight ?? 0,
        };
      } else if (r.trackIdentifier === remote.audio) {
        out.audio = {
          concealedSamples: r.concealedSamples ?? 0,
          totalSamplesReceived: r.totalSamplesReceived ?? 0,
          concealmentEvents: r.concealmentEvents ?? 0,
          packetsLost: r.packetsLost ?? 0,
          packetsReceived: r.packetsReceived ?? 0,
        };
      }
    });
    return out;
  }, publisher);
}

/** What the publisher's browser thinks of its uplink to the SFU (getStats). */
function uplink(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.__talkconnect.pc.getStats()).forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate !== undefined) {
        out.availableOutgoingKbps = Math.round(r.availableOutgoingBitrate / 1000);
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out.videoTargetKbps = Math.round((r.targetBitrate ?? 0) / 1000);
        out.qualityLimitationReason = r.qualityLimitationReason;
        out.frameSize = `${r.frameWidth}x${r.frameHeight}@${r.framesPerSecond}`;
      }
    });
    return out;
  });
}

function quality(a, b) {
  const secs = (b.at - a.at) / 1000;
  const d = (k, kind) => (b[kind]?.[k] ?? 0) - (a[kind]?.[k] ?? 0);
  const samples = d('totalSamplesReceived', 'audio');
  const vPackets = d('packetsReceived', 'video') + d('packetsLost', 'video');
  return {
    fps: +(d('framesDecoded', 'video') / secs).toFixed(1),
    freezes: d('freezeCount', 'video'),
    freezeSecs: +d('totalFreezesDuration', 'video').toFixed(2),
    videoKbps: Math.round((d('bytesReceived', 'video') * 8) / secs / 1000),
    videoLossPct: vPackets > 0 ? +((100 * d('packetsLost', 'video')) / vPackets).toFixed(2) : 0,
    nacks: d('nackCount', 'video'),
    height: b.video?.frameHeight ?? 0,
    concealedPct: samples > 0 ? +((100 * d('concealedSamples', 'audio')) / samples).toFixed(2) : 0,
    concealmentEvents: d('concealmentEvents', 'audio'),
  };
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('network namespaces need root');
  removeTopology();
  buildTopology();
  const server = await startServer({
    netns: NS.srv,
    port: PORT,
    env: {
      TALKCONNECT__SERVER__HOST: SERVER_IP,
      TALKCONNECT__SFU__BIND_IP: SERVER_IP,
      TALKCONNECT__SFU__ALLOW_LOOPBACK: 'false',
      TALKCONNECT__SFU__ALLOW_PRIVATE_CANDIDATES: 'true',
      ...SERVER_ENV,
    },
  });
  const publisherBrowser = await browserIn(NS.srv);
  const subscriberBrowser = await browserIn(NS.sub);
  const rows = [];
  try {
    const pub = await (await publisherBrowser.newContext({ locale: 'en-US' })).newPage();
    await pub.goto(SITE);
    await signInAsGuest(pub, 'Publisher');
    const roomId = await createRoom(pub, { title: 'Quality bench' });
    const publisher = await userIdOf(pub);
    await pub.waitForTimeout(WARMUP * 1000);
    console.log(`publisher: ${JSON.stringify(await uplink(pub))}`);
    for (const condition of CONDITIONS) {
      clearCondition();
      const context = await subscriberBrowser.newContext({ locale: 'en-US' });
      const page = await context.newPage();
      await page.goto(`${SITE}/r/${roomId}`);
      await signInAsGuest(page, `Listener ${condition}`);
      applyCondition(condition);
      await page.locator(`.tile[data-user-id="${publisher}"] video`).waitFor({ timeout: 60000 });
      await page.waitForTimeout(WARMUP * 1000);
      const a = await snapshot(page, publisher);
      await page.waitForTimeout(SECONDS * 1000);
      const b = await snapshot(page, publisher);
      const row = { label: LABEL, condition, ...quality(a, b) };
      console.log(JSON.stringify(row));
      rows.push(row);
      clearCondition();
      await context.close();
    }
  } finally {
    clearCondition();
    await publisherBrowser.close().catch(() => {});
    await subscriberBrowser.close().catch(() => {});
    await server.stop();
    removeTopology();
  }
  console.log('\n| setup | downlink | frames/s | freezes | frozen (s) | video kbit/s | video loss % | NACKs | audio concealed % | concealment events |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const link = /k$/.test(r.condition) ? `${r.condition}bit/s` : `${r.condition} % loss`;
    console.log(
      `| ${r.label} | ${link} | ${r.fps} | ${r.freezes} | ${r.freezeSecs} | ${r.videoKbps} | ${r.videoLossPct} | ${r.nacks} | ${r.concealedPct} | ${r.concealmentEvents} |`,
    );
  }
}

await main();
