// Cluster benchmark through the product, with the official socket.io-client:
//  1. lobby: a room created over REST on replica A; time until `room:list-update` reaches a
//     lobby socket on replica B (and, for comparison, one on A itself);
//  2. room broadcast: chat in a 12-seat room whose members are split 6/6 over A and B, every
//     member sending with acks (a window in flight); deliveries/s to the members of each replica.
// Usage: TALKCONNECT_BIN=…/release/talkconnect node cluster/bench.mjs [--rooms 300] [--seconds 10]
import { performance } from "node:perf_hooks";

import { api, call, closeAll, cluster, connect, guest, room, servicesMissing } from "./harness.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROOMS = opt("rooms", 300);
const SECONDS = opt("seconds", 10);
const WINDOW = opt("window", 8);

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const ms = (x) => x.toFixed(2);

async function lobbyLatency(a, b) {
  const watchersB = await Promise.all(Array.from({ length: 10 }, () => connect(b, null)));
  const watcherA = await connect(a, null);
  const hosts = await Promise.all(Array.from({ length: 10 }, (_, i) => guest(a, `Host ${i}`)));
  const arrivals = new Map(); // room id -> {a, b}
  const waiters = new Map();
  const seen = (where) => (u) => {
    if (u.action !== "created") return;
    const t = performance.now();
    const entry = arrivals.get(u.room.id) ?? {};
    if (entry[where] === undefined) entry[where] = t;
    arrivals.set(u.room.id, entry);
    const w = waiters.get(u.room.id);
    if (w && entry.a !== undefined && entry.b !== undefined) w();
  };
  watchersB[0].on("room:list-update", seen("b"));
  watcherA.on("room:list-update", seen("a"));
  const toB = [];
  const toA = [];
  for (let i = 0; i < ROOMS + 20; i++) {
    const host = hosts[i % hosts.length];
    const t0 = performance.now();
    const res = await api(a, "POST", "/api/rooms", { token: host.token, body: { title: `Bench ${i}` } });
    if (res.status !== 201) throw new Error(`create: ${res.status}`);
    const id = res.body.id;
    const entry = arrivals.get(id);
    if (!(entry && entry.a !== undefined && entry.b !== undefined)) {
      await new Promise((resolve) => waiters.set(id, resolve));
    }
    const e = arrivals.get(id);
    if (i >= 20) {
      // the first 20 are warm-up
      toB.push(e.b - t0);
      toA.push(e.a - t0);
    }
  }
  const hop = toB.map((x, i) => x - toA[i]).sort((x, y) => x - y);
  toB.sort((x, y) => x - y);
  toA.sort((x, y) => x - y);
  for (const w of [...watchersB, watcherA]) w.close();
  return { toB, toA, hop };
}

async function roomBroadcast(a, b) {
  const host = await guest(a, "Host");
  const roomId = await room(a, host, { title: "Broadcast", maxParticipants: 12 });
  const members = [host];
  for (let i = 1; i < 12; i++) members.push(await guest(i < 6 ? a : b, `M${i}`));
  const sockets = [];
  for (let i = 0; i < 12; i++) {
    const s = await connect(i < 6 ? a : b, members[i], { transports: ["websocket"] });
    const joined = await call(s, "room:join", { roomId });
    if (!joined.ok) throw new Error(JSON.stringify(joined));
    sockets.push(s);
  }
  let counting = false;
  const delivered = { a: 0, b: 0 };
  sockets.forEach((s, i) =>
    s.on("chat:message", () => {
      if (counting) delivered[i < 6 ? "a" : "b"]++;
    }),
  );
  let stop = false;
  let sent = 0;
  const sender = async (s) => {
    const inflight = new Set();
    while (!stop) {
      const p = call(s, "chat:message", { message: "x" }).then(() => inflight.delete(p));
      inflight.add(p);
      sent++;
      if (inflight.size >= WINDOW) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  };
  const running = sockets.map(sender);
  await new Promise((r) => setTimeout(r, 2000)); // warm-up
  const sentBefore = sent;
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  const sentIn = sent - sentBefore;
  stop = true;
  await Promise.all(running);
  for (const s of sockets) s.close();
  return { elapsed, messagesPerSec: sentIn / elapsed, a: delivered.a / elapsed, b: delivered.b / elapsed };
}

async function main() {
  const missing = servicesMissing();
  if (missing) throw new Error(missing);
  const c = await cluster("bench");
  try {
    const env = { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "600" };
    const a = await c.replica(env);
    const b = await c.replica(env);
    const { toB, toA, hop } = await lobbyLatency(a, b);
    console.log(`lobby update, POST on A -> lobby socket on B (n=${toB.length}): p50 ${ms(pct(toB, 50))} ms, p99 ${ms(pct(toB, 99))} ms`);
    console.log(`lobby update, POST on A -> lobby socket on A (n=${toA.length}): p50 ${ms(pct(toA, 50))} ms, p99 ${ms(pct(toA, 99))} ms`);
    console.log(`lobby update, arrival on B minus arrival on A, same room: p50 ${ms(pct(hop, 50))} ms, p99 ${ms(pct(hop, 99))} ms`);
    const r = await roomBroadcast(a, b);
    console.log(
      `room chat (12 members, 6 on A, 6 on B, ${SECONDS} s): ${r.messagesPerSec.toFixed(0)} messages/s, ` +
        `deliveries/s to A's members ${r.a.toFixed(0)}, to B's members ${r.b.toFixed(0)}, total ${(r.a + r.b).toFixed(0)}`,
    );
  } finally {
    closeAll();
    await c.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
