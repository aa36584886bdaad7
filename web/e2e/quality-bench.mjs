// Measures what one listener's browser gets on a bad downlink: video frames decoded per
// second, freezes (count and total time) and audio concealment, from Chromium's own getStats.
// Not a test: prints one line per condition and a Markdown table (docs/BENCHMARKS.md).
//
//   cd web && TALKCONNECT_BIN=… node e2e/quality-bench.mjs
//   cd web && TALKCONNECT_BIN=… LABEL=no-gate \
//     SERVER_ENV='{"TALKCONNECT__SFU__VIDEO_PAUSE_LOSS_PERCENT":"0"}' node e2e/quality-bench.mjs
//
// The network lab of netlab.mjs (two namespaces, root only). CONDITIONS (default
// `0,2,5,300k`) are applied one after another to the listener's downlink: `N` % random loss,
// or `Nk` kbit/s. For each, a fresh listener page joins the publisher's room, waits WARMUP
// seconds (default 5), then measures for SECONDS (default 20). The publisher's camera plays
// random noise (VIDEO=fake: Chromium's own pattern, under 200 kbit/s).
import { tempDir } from '../../e2e/support/server.mjs';
import { createRoom, signInAsGuest, userIdOf } from './harness.mjs';
import { SITE, netLab, noiseCamera, receiving } from './netlab.mjs';

const CONDITIONS = (process.env.CONDITIONS ?? '0,2,5,300k').split(',').map((c) => c.trim());
const WARMUP = Number(process.env.WARMUP ?? 5);
const SECONDS = Number(process.env.SECONDS ?? 20);
const LABEL = process.env.LABEL ?? 'default';
const SERVER_ENV = JSON.parse(process.env.SERVER_ENV ?? '{}');

/** What the publisher's browser thinks of its uplink to the SFU (getStats). */
function uplink(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.__talkconnect.pc.getStats()).forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate !== undefined) {
        out.availableOutgoingKbps = Math.round(r.availableOutgoingBitrate / 1000);
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        // One entry per simulcast layer (its rid), or one for a single encoding.
        out.video ??= {};
        out.video[r.rid ?? 'single'] = {
          targetKbps: Math.round((r.targetBitrate ?? 0) / 1000),
          limitation: r.qualityLimitationReason,
          frame: `${r.frameWidth}x${r.frameHeight}@${r.framesPerSecond}`,
        };
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
  const dir = tempDir('tc-quality-');
  const lab = netLab('tcq', dir);
  lab.build();
  const server = await lab.server(SERVER_ENV);
  const publisherBrowser = await lab.browser('srv', { video: process.env.VIDEO === 'fake' ? undefined : noiseCamera() });
  const listenerBrowser = await lab.browser('sub');
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
      lab.setCondition('0');
      const context = await listenerBrowser.newContext({ locale: 'en-US' });
      const page = await context.newPage();
      await page.goto(`${SITE}/r/${roomId}`);
      await signInAsGuest(page, `Listener ${condition}`);
      lab.setCondition(condition);
      await page.locator(`.tile[data-user-id="${publisher}"] video`).waitFor({ timeout: 60000 });
      await page.waitForTimeout(WARMUP * 1000);
      const a = await receiving(page, publisher);
      await page.waitForTimeout(SECONDS * 1000);
      const b = await receiving(page, publisher);
      const row = { label: LABEL, condition, ...quality(a, b) };
      console.log(JSON.stringify(row));
      rows.push(row);
      lab.setCondition('0');
      await context.close();
    }
  } finally {
    await publisherBrowser.close().catch(() => {});
    await listenerBrowser.close().catch(() => {});
    if (process.env.DUMP_LOG) console.log(server.log().split('\n').filter((l) => l.includes(process.env.DUMP_LOG)).join('\n'));
    await server.stop();
    lab.remove();
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
