// Hostile-client benchmark (docs/BENCHMARKS.md, "Hostile clients"): for each attack the
// security review found, many attacking connections at once against the real binary, while
// an honest user in a room chats with acks. Reports the server's RSS growth per attacking
// connection and the honest user's ack round trip (p50, p99) during the attack.
//
//   node e2e/soak/hostile.mjs [--connections 50] [--seconds 20] [--release] [--unlimited] [--old-build]
//
// With the defaults one address gets few connections (the per-address caps); --unlimited
// turns rate limits and those caps off, to measure what one connection can cost at most.
// TALKCONNECT_BIN picks the binary (--release builds and uses target/release/talkconnect);
// --old-build leaves out the settings newer than the first release, to run a build from
// before the hardening side by side (keep --connections small there: it has no limits).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { io } from "socket.io-client";

import { REPO, startServer } from "../support/server.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const CONNECTIONS = option("connections", 50);
const SECONDS = option("seconds", 20);
if (process.argv.includes("--release")) {
  const build = spawnSync("cargo", ["build", "--release", "--quiet", "--bin", "talkconnect"], { cwd: REPO, stdio: "inherit" });
  if (build.status !== 0) process.exit(1);
  const target = process.env.CARGO_TARGET_DIR || path.join(process.env.HOME, ".cache/talkconnect-target");
  process.env.TALKCONNECT_BIN = path.join(target, "release/talkconnect");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);

// --- raw websocket frames (RFC 6455), as no well-behaved client sends them ---
function header(opcode, length, fin = true) {
  const parts = [Buffer.from([(fin ? 0x80 : 0) | opcode])];
  if (length < 126) parts.push(Buffer.from([0x80 | length]));
  else if (length < 65536) parts.push(Buffer.from([0x80 | 126, length >> 8, length & 255]));
  else {
    const b = Buffer.alloc(9);
    b[0] = 0x80 | 127;
    b.writeBigUInt64BE(BigInt(length), 1);
    parts.push(b);
  }
  parts.push(Buffer.alloc(4)); // zero mask
  return Buffer.concat(parts);
}
const frame = (opcode, payload) => Buffer.concat([header(opcode, payload.length), payload]);
const text = (s) => frame(0x1, Buffer.from(s));

function rawWs(port, { recvBuffer } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    if (recvBuffer) socket.setNoDelay(true);
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      );
      socket.once("data", () => resolve(socket));
    });
  });
}

// --- the attacks: each opens one connection and does its worst until `until` ---
const attacks = {
  async oversizedFrame(port, until) {
    const s = await rawWs(port);
    s.on("error", () => {});
    s.write(header(0x2, 1 << 30));
    const chunk = Buffer.alloc(1 << 16);
    while (Date.now() < until && !s.destroyed && s.write(chunk)) await sleep(1);
  },
  async pingFlood(port, until) {
    const s = await rawWs(port);
    s.on("error", () => {});
    s.pause(); // never read the pongs
    const burst = Buffer.concat(Array.from({ length: 500 }, () => frame(0x9, Buffer.from("flood"))));
    while (Date.now() < until && !s.destroyed) {
      if (!s.write(burst)) await new Promise((r) => s.once("drain", r).once("close", r));
      await sleep(1);
    }
  },
  async neverReads(port, until) {
    const s = await rawWs(port);
    s.on("error", () => {});
    s.write(text("40")); // an anonymous lobby watcher
    s.pause();
    while (Date.now() < until && !s.destroyed) await sleep(200);
  },
  async echoBait(port, until) {
    const s = await rawWs(port);
    s.on("error", () => {});
    s.pause();
    const big = "n".repeat(60_000);
    while (Date.now() < until && !s.destroyed) {
      s.write(text(`40/${big},`));
      await sleep(50);
    }
  },
  async attachments(port, until) {
    const s = await rawWs(port);
    s.on("error", () => {});
    s.write(text('4510-["x",{"_placeholder":true,"num":0}]'));
    const part = frame(0x2, Buffer.alloc(60 * 1024));
    while (Date.now() < until && !s.destroyed) {
      s.write(part);
      await sleep(20);
    }
  },
  async sessionFlood(port, until) {
    while (Date.now() < until) {
      await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`).catch(() => {});
      await sleep(5);
    }
  },
};

// Lobby updates for the never-reading watchers: someone keeps opening and ending rooms.
async function lobbyChurn(server, token, until) {
  while (Date.now() < until) {
    const r = await fetch(`${server.url}/api/rooms`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "x".repeat(90) }),
    }).then((res) => res.json());
    await fetch(`${server.url}/api/rooms/${r.id}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  }
}

async function guest(server, name) {
  const res = await fetch(`${server.url}/api/auth/guest`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ displayName: name }),
  });
  return res.json();
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

const results = [];
for (const [name, attack] of Object.entries(attacks)) {
  // A fresh server per attack, with the product's defaults (rate limits on).
  const limits = process.argv.includes("--unlimited") ? "false" : "true";
  const server = await startServer({
    env: {
      RUST_LOG: "warn,talkconnect::app=info",
      TALKCONNECT__RATE_LIMIT__ENABLED: limits,
      ...(process.argv.includes("--old-build") ? { TALKCONNECT__ROOMS__MAX_SEATS_PER_USER: null } : {}),
    },
  });
  const honest = await guest(server, "Honest");
  const host = await guest(server, "Churn");
  const room = await fetch(`${server.url}/api/rooms`, {
    method: "POST",
    headers: { authorization: `Bearer ${honest.token}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "Honest room" }),
  }).then((r) => r.json());
  const socket = io(server.url, { auth: { token: honest.token }, transports: ["websocket"] });
  await new Promise((r) => socket.once("connect", r));
  await socket.timeout(5000).emitWithAck("room:join", { roomId: room.id });
  await sleep(1000);
  const before = rssKiB(server.pid);
  const until = Date.now() + SECONDS * 1000;
  const rtts = [];
  let failed = 0;
  const honestLoop = (async () => {
    while (Date.now() < until) {
      const t = performance.now();
      // The chat budget is 20 per 10 s: one message every 600 ms stays within it.
      const ack = await socket.timeout(5000).emitWithAck("chat:message", { message: "still here" }).catch(() => null);
      if (ack?.ok) rtts.push(performance.now() - t);
      else failed++;
      await sleep(600);
    }
  })();
  const churn = name === "neverReads" ? lobbyChurn(server, host.token, until) : Promise.resolve();
  await Promise.all([
    ...Array.from({ length: CONNECTIONS }, () => attack(server.port, until).catch(() => {})),
    honestLoop,
    churn,
  ]);
  const peak = rssKiB(server.pid);
  await sleep(2000);
  const after = rssKiB(server.pid);
  rtts.sort((a, b) => a - b);
  const result = {
    attack: name,
    connections: CONNECTIONS,
    seconds: SECONDS,
    rss_before_mib: +(before / 1024).toFixed(1),
    rss_peak_mib: +(peak / 1024).toFixed(1),
    rss_after_mib: +(after / 1024).toFixed(1),
    kib_per_attacker: Math.round((peak - before) / CONNECTIONS),
    honest_acks: rtts.length,
    honest_failed: failed,
    ack_p50_ms: +percentile(rtts, 50).toFixed(2),
    ack_p99_ms: +percentile(rtts, 99).toFixed(2),
  };
  console.log(JSON.stringify(result));
  results.push(result);
  socket.close();
  await server.stop();
}
console.log(JSON.stringify({ hostile: results }));
process.exit(0);
