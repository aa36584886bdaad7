// Soak benchmark (docs/BENCHMARKS.md, "Soak"): many users on the real binary joining,
// chatting, leaving, reloading and dropping off for minutes, with the official
// socket.io-client. The server's RSS is sampled every 10 s; at the end everyone leaves, and
// after the grace period the server must hold no live room and no seat.
//
//   node e2e/soak/soak.mjs [--users 1000] [--rooms 100] [--minutes 10] [--release] [--old-build]
//
// --old-build leaves out the settings newer than the first release (to measure a build from
// before them side by side with this one).
// Prints one line per sample and a JSON summary on the last line. TALKCONNECT_BIN picks the
// binary (--release builds and uses target/release/talkconnect).
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { io } from "socket.io-client";

import { REPO, startServer } from "../support/server.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const USERS = option("users", 1000);
const ROOMS = option("rooms", 100);
const MINUTES = option("minutes", 10);
const GRACE_SECS = 5;

if (process.argv.includes("--release")) {
  const build = spawnSync("cargo", ["build", "--release", "--quiet", "--bin", "talkconnect"], {
    cwd: REPO,
    stdio: "inherit",
  });
  if (build.status !== 0) process.exit(1);
  const target = process.env.CARGO_TARGET_DIR || path.join(process.env.HOME, ".cache/talkconnect-target");
  process.env.TALKCONNECT_BIN = path.join(target, "release/talkconnect");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const between = (lo, hi) => lo + Math.random() * (hi - lo);

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

const OLD_BUILD = process.argv.includes("--old-build");
const server = await startServer({
  env: {
    RUST_LOG: "warn,talkconnect::app=info",
    TALKCONNECT__REALTIME__SEAT_GRACE_SECS: String(GRACE_SECS),
    ...(OLD_BUILD ? { TALKCONNECT__ROOMS__MAX_SEATS_PER_USER: null } : {}),
  },
});

async function api(method, route, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(server.url + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const counts = { joins: 0, leaves: 0, reloads: 0, drops: 0, chats: 0, refused: 0, errors: 0 };
const live = new Set();

function connect(user, transports) {
  return new Promise((resolve, reject) => {
    const socket = io(server.url, { auth: { token: user.token }, transports, reconnection: false, forceNew: true });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function ack(socket, event, payload) {
  return socket.timeout(15000).emitWithAck(event, payload);
}

async function chooseRoom(user) {
  if (live.size < ROOMS) {
    const { status, body } = await api("POST", "/api/rooms", {
      token: user.token,
      body: { title: `Soak ${Math.floor(Math.random() * 1e6)}`, maxParticipants: 12 },
    });
    if (status === 201) {
      live.add(body.id);
      return body.id;
    }
  }
  return pick([...live]);
}

async function life(user, deadline) {
  while (Date.now() < deadline) {
    // A fifth of the users start on long-polling (and upgrade), like browsers behind proxies.
    const transports = Math.random() < 0.2 ? ["polling", "websocket"] : ["websocket"];
    let socket;
    try {
      socket = await connect(user, transports);
    } catch {
      counts.errors++;
      await sleep(1000);
      continue;
    }
    const roomId = await chooseRoom(user).catch(() => null);
    if (!roomId) {
      socket.close();
      await sleep(500);
      continue;
    }
    const joined = await ack(socket, "room:join", { roomId }).catch(() => ({ ok: false }));
    if (!joined.ok) {
      counts.refused++;
      if (joined.error?.code === "ROOM_ENDED") live.delete(roomId);
      socket.close();
      await sleep(between(200, 1000));
      continue;
    }
    counts.joins++;
    for (let i = Math.floor(between(1, 5)); i > 0 && Date.now() < deadline; i--) {
      await sleep(between(1000, 4000));
      const sent = await ack(socket, "chat:message", { message: `hello ${i}` }).catch(() => ({ ok: false }));
      if (sent.ok) counts.chats++;
    }
    const roll = Math.random();
    if (roll < 0.5) {
      await ack(socket, "room:leave", { roomId }).catch(() => {});
      counts.leaves++;
      socket.close();
    } else if (roll < 0.75) {
      // A reload: the tab goes and comes back within the grace period.
      socket.close();
      counts.reloads++;
    } else {
      // The network drops: the transport goes without a word; back after a while,
      // sometimes after the grace period.
      socket.io.engine.transport.ws?.terminate?.();
      socket.io.engine.close();
      counts.drops++;
      await sleep(between(1000, (GRACE_SECS + 3) * 1000));
    }
    await sleep(between(100, 1500));
  }
}

const started = Date.now();
const users = [];
for (let i = 0; i < USERS; i += 50) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(50, USERS - i) }, (_, j) =>
      api("POST", "/api/auth/guest", { body: { displayName: `Soak ${i + j}` } }).then(({ body }) => body),
    ),
  );
  users.push(...batch);
}
const baseline = rssKiB(server.pid);
console.log(`users ${USERS}, rooms ${ROOMS}, ${MINUTES} min; RSS at start ${(baseline / 1024).toFixed(1)} MiB`);

const samples = [];
const sampler = setInterval(() => {
  const kib = rssKiB(server.pid);
  samples.push({ t: Math.round((Date.now() - started) / 1000), mib: +(kib / 1024).toFixed(1) });
  console.log(`t=${samples.at(-1).t}s rss=${samples.at(-1).mib} MiB live_rooms=${live.size} ${JSON.stringify(counts)}`);
}, 10_000);

const deadline = Date.now() + MINUTES * 60_000;
await Promise.all(users.map((u) => sleep(Math.random() * 5000).then(() => life(u, deadline))));
clearInterval(sampler);

// Everyone is gone: after the grace period every seat is released and every room ended.
await sleep((GRACE_SECS + 5) * 1000);
const { body } = await api("GET", "/api/rooms?status=LIVE&limit=100");
const after = rssKiB(server.pid) / 1024;
const warm = samples.filter((s) => s.t >= 120);
const summary = {
  users: USERS,
  rooms: ROOMS,
  minutes: MINUTES,
  rss_start_mib: +(baseline / 1024).toFixed(1),
  rss_after_warmup_mib: warm[0]?.mib,
  rss_end_of_load_mib: samples.at(-1)?.mib,
  rss_min_after_warmup_mib: Math.min(...warm.map((s) => s.mib)),
  rss_max_after_warmup_mib: Math.max(...warm.map((s) => s.mib)),
  rss_everyone_gone_mib: +after.toFixed(1),
  live_rooms_left: body.rooms.length,
  ...counts,
};
console.log(JSON.stringify(summary));
await server.stop();
process.exit(body.rooms.length === 0 ? 0 : 1);
