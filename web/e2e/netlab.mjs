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
// the publisher's camera can play a clip of random grey (`noiseClip`): Chromium's own fake
// camera compresses to under 200 kbit/s, which no link here would touch.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { MEDIA_ARGS, chromiumPath, launchBrowser, startServer } from './harness.mjs';

export const SERVER_IP = '10.77.0.1';
const LISTENER_IP = '10.77.0.2';
const PORT = 8080;
export const SITE = `http://${SERVER_IP}:${PORT}`;

if (!process.env.PATH?.split(':').includes('/usr/sbin')) process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const run = (cmd, ...args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (ns, cmd, ...args) => run('ip', 'netns', 'exec', ns, cmd, ...args);

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

/** A 2 s, 640x360, 15 fps Y4M clip of random grey (pairs of pixels) that changes every frame
 * (hard to compress: the encoder spends what its estimate allows). */
export function noiseClip(dir) {
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

/** The lab: `prefix` names its namespaces (`<prefix>-srv`, `<prefix>-sub`), its veth ends and
 * its nftables table. */
export function netLab(prefix, dir) {
  const ns = { srv: `${prefix}-srv`, sub: `${prefix}-sub` };
  const veth = { srv: `${prefix}-s`, sub: `${prefix}-c` };
  const table = `${prefix.replace(/[^a-z0-9]/g, '_')}_loss`;

  function remove() {
    for (const line of run('ip', 'netns', 'list').split('\n')) {
      const name = line.split(' ')[0];
      if (!Object.values(ns).includes(name)) continue;
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

  function build() {
    remove();
    for (const name of Object.values(ns)) {
      run('ip', 'netns', 'add', name);
      inNs(name, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6');
      inNs(name, 'ip', 'link', 'set', 'lo', 'up');
    }
    run('ip', 'link', 'add', veth.srv, 'netns', ns.srv, 'type', 'veth', 'peer', 'name', veth.sub, 'netns', ns.sub);
    inNs(ns.srv, 'ip', 'addr', 'add', `${SERVER_IP}/24`, 'dev', veth.srv);
    inNs(ns.sub, 'ip', 'addr', 'add', `${LISTENER_IP}/24`, 'dev', veth.sub);
    inNs(ns.srv, 'ip', 'link', 'set', veth.srv, 'up');
    inNs(ns.sub, 'ip', 'link', 'set', veth.sub, 'up');
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
    execFileSync('ip', ['netns', 'exec', ns.sub, 'nft', '-f', '-'], {
      input: `table inet ${table} {
        chain input {
          type filter hook input priority filter; policy accept;
          meta l4proto udp numgen random mod 100 < ${loss} drop
        }
      }`,
    });
  }

  /** Chromium in the server's (`srv`) or the listener's (`sub`) namespace. */
  function browser(side, { video } = {}) {
    const wrapper = join(dir, `chromium-${ns[side]}`);
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns[side]} ${chromiumPath()} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const videoArgs = video ? [`--use-file-for-fake-video-capture=${video}`] : [];
    return launchBrowser({
      executablePath: wrapper,
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
