// A bad downlink for one browser, made of two network namespaces joined by a veth pair (root
// only; iproute2, nftables, tc), for web/e2e/congestion.test.mjs and quality-bench.mjs:
//
//   <prefix>-srv 10.77.0.1  ── 10.77.0.2 <prefix>-sub
//   (the binary, and a publishing          (the listener's Chromium: conditions apply to
//    Chromium on the same address)           what reaches it)
//
// `setCondition('N')` drops N % of the UDP datagrams the listener receives (nftables `numgen
// random`, input hook in the listener's namespace), `setCondition('Nk')` shapes everything the
// server side sends it to N kbit/s (`tc tbf` on the server's end of the veth), `'0'` clears
// both. Pages are plain http, treated as secure by a Chromium flag so the fake devices work;
// the publisher's camera can play random noise (`noiseCamera`): Chromium's own fake camera
// compresses to under 200 kbit/s, which no link here would touch.
import { after, before } from 'node:test';

import { tempDir } from '../../e2e/support/server.mjs';
import { MEDIA_ARGS, launchBrowser, noiseClip, startServer } from './harness.mjs';
import { addNamespace, chromiumIn, inNs, link, nft, removeNamespaces, run } from './namespaces.mjs';

export const SERVER_IP = '10.77.0.1';
const LISTENER_IP = '10.77.0.2';
const PORT = 8080;
export const SITE = `http://${SERVER_IP}:${PORT}`;

/** Why this machine cannot build the lab, or null. */
export function labMissing() {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'nft', 'tc']) {
    try {
      run('sh', '-c', `command -v ${tool}`);
    } catch {
      return `${tool} is missing (iproute2, nftables)`;
    }
  }
  return null;
}

/** The publisher's camera: 2 s of 640x360 noise at 15 frames/s. */
export const noiseCamera = () => noiseClip({ width: 640, height: 360, fps: 15, frames: 30 });

/** The lab: `prefix` names its namespaces (`<prefix>-srv`, `<prefix>-sub`), its veth ends and
 * its nftables table. */
export function netLab(prefix, dir) {
  const ns = { srv: `${prefix}-srv`, sub: `${prefix}-sub` };
  const veth = { srv: `${prefix}-s`, sub: `${prefix}-c` };
  const table = `${prefix.replace(/[^a-z0-9]/g, '_')}_loss`;

  const remove = () => removeNamespaces(`${prefix}-`);

  function build() {
    remove();
    Object.values(ns).forEach(addNamespace);
    link(ns.srv, veth.srv, `${SERVER_IP}/24`, ns.sub, veth.sub, `${LISTENER_IP}/24`);
  }

  function setCondition(condition) {
    try {
      inNs(ns.srv, 'tc', 'qdisc', 'del', 'dev', veth.srv, 'root');
    } catch {
      // No shaping was set.
    }
    try {
      inNs(ns.sub, 'nft', 'delete', 'table', 'inet', table);
    } catch {
      // No loss was set.
    }
    const rate = /^(\d+)k$/.exec(condition);
    if (rate) {
      inNs(ns.srv, 'tc', 'qdisc', 'add', 'dev', veth.srv, 'root', 'tbf', 'rate', `${rate[1]}kbit`, 'burst', '16kbit', 'latency', '300ms');
      return;
    }
    const loss = Number(condition);
    if (!Number.isInteger(loss) || loss < 0 || loss > 100) throw new Error(`condition ${condition}: neither N (loss %) nor Nk (kbit/s)`);
    if (loss === 0) return;
    nft(
      ns.sub,
      `table inet ${table} {
        chain input {
          type filter hook input priority filter; policy accept;
          meta l4proto udp numgen random mod 100 < ${loss} drop
        }
      }`,
    );
  }

  /** Chromium in the server's (`srv`) or the listener's (`sub`) namespace. */
  function browser(side, { video } = {}) {
    const videoArgs = video ? [`--use-file-for-fake-video-capture=${video}`] : [];
    return launchBrowser({
      executablePath: chromiumIn(ns[side], dir),
      extraArgs: [...MEDIA_ARGS, ...videoArgs, `--unsafely-treat-insecure-origin-as-secure=${SITE}`],
    });
  }

  /** The binary in the server's namespace, its SFU on the veth address. */
  function server(env = {}) {
    return startServer({
      netns: ns.srv,
      port: PORT,
      env: {
        TALKCONNECT__SERVER__HOST: SERVER_IP,
        TALKCONNECT__SFU__BIND_IP: SERVER_IP,
        TALKCONNECT__SFU__ALLOW_LOOPBACK: 'false',
        TALKCONNECT__SFU__ALLOW_PRIVATE_CANDIDATES: 'true',
        ...env,
      },
    });
  }

  return { build, remove, setCondition, browser, server };
}

/**
 * The set-up a call test in the lab shares: registers `before`/`after` hooks that build the
 * lab `prefix`, start the server with `env` and launch the publisher's browser (in the
 * server's namespace, camera `video`) and the listener's. Returns `{ skip, call }`: `skip` is
 * why the lab cannot be built here (a test under CI=true throws instead), `call` holds `lab`,
 * `server`, `publisherBrowser` and `listenerBrowser` once `before` ran. `DUMP_LOG=1` prints
 * the server's log at the end.
 */
export function labCall(name, prefix, { env = {}, video } = {}) {
  const missing = labMissing();
  if (missing && process.env.CI === 'true') throw new Error(`${name} test under CI=true: ${missing}`);
  const call = { lab: netLab(prefix, tempDir(`tc-${name}-`)), server: null, publisherBrowser: null, listenerBrowser: null };
  before(async () => {
    if (missing) return;
    call.lab.build();
    call.server = await call.lab.server({ RUST_LOG: 'warn,talkconnect=info', ...env });
    call.publisherBrowser = await call.lab.browser('srv', video ? { video } : {});
    call.listenerBrowser = await call.lab.browser('sub');
  });
  after(async () => {
    if (missing) return;
    if (process.env.DUMP_LOG) console.log(call.server?.log());
    await call.publisherBrowser?.close().catch(() => {});
    await call.listenerBrowser?.close().catch(() => {});
    await call.server?.stop();
    call.lab.remove();
  });
  return { skip: missing ?? false, call };
}

/** A listener's receiving counters for one publisher (getStats of the SFU connection). */
export function receiving(page, publisher) {
  const fields = {
    video: ['framesDecoded', 'freezeCount', 'totalFreezesDuration', 'packetsLost', 'packetsReceived', 'nackCount', 'bytesReceived', 'frameHeight'],
    audio: ['concealedSamples', 'totalSamplesReceived', 'concealmentEvents', 'packetsLost', 'packetsReceived'],
  };
  return page.evaluate(
    async ({ publisher, fields }) => {
      const tc = window.__talkconnect;
      const remote = tc.remote[publisher] ?? {};
      const out = { at: performance.now(), video: null, audio: null };
      (await tc.pc.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        const kind = r.trackIdentifier === remote.video ? 'video' : r.trackIdentifier === remote.audio ? 'audio' : null;
        if (kind) out[kind] = Object.fromEntries(fields[kind].map((f) => [f, r[f] ?? 0]));
      });
      return out;
    },
    { publisher, fields },
  );
}
