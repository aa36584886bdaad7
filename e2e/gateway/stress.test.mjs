// Seats under churn: many users at once joining, leaving, reloading, dropping off, being
// kicked and taking seats over REST, across a few rooms. Then, once things are quiet, the
// database and the sockets must agree on who sits where (no ghost seat, no lost one), and
// once everyone is gone every room must have ended.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { api, call, closeAll, connect, guest, room, settle, startServer } from "./harness.mjs";

const GRACE_SECS = 2;
const USERS = 24;
const ROOMS = 4;
const CHURN_MS = 15_000;

const servers = [];
after(async () => {
  closeAll();
  for (const s of servers) await s.stop();
});

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("under churn the database and the sockets agree on every seat, and every room ends", { timeout: 120_000 }, async () => {
  const s = await startServer({ env: { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: String(GRACE_SECS) } });
  servers.push(s);
  const users = [];
  for (let i = 0; i < USERS; i++) users.push({ ...(await guest(s, `Churn ${i}`)), socket: null, room: null });
  const hosts = users.slice(0, ROOMS);
  const rooms = [];
  for (const host of hosts) {
    const id = await room(s, host, { title: `Churn room ${rooms.length}`, maxParticipants: 12 });
    rooms.push(id);
    host.room = id;
  }

  // What each client believes, as the web app does: the room its current socket sits in
  // (from acks and events). Like the web app, it counts as inside from the moment it asks to
  // join, so news of that room arriving before the ack (a kick, the room ending, its own seat
  // released) is not lost.
  function out(user, roomId) {
    if (roomId === user.room) user.room = null;
    if (roomId === user.joining) user.joining = null;
  }
  function watch(user, socket) {
    socket.on("room:user-kicked", (e) => {
      if (e.userId === user.id) out(user, e.roomId);
    });
    socket.on("room:user-left", (e) => {
      if (e.userId === user.id) out(user, e.roomId);
    });
    socket.on("room:ended", (e) => out(user, e.roomId));
  }
  async function fresh(user) {
    user.socket?.close();
    user.socket = await connect(s, user);
    watch(user, user.socket);
  }
  async function join(user, roomId) {
    user.joining = roomId;
    const ack = await call(user.socket, "room:join", { roomId }).catch(() => ({ ok: false }));
    const stillJoining = user.joining === roomId;
    user.joining = null;
    if (ack.ok && stillJoining) user.room = roomId;
    return ack.ok;
  }

  for (const user of users) await fresh(user);
  for (const host of hosts) await join(host, host.room);

  const ops = {
    async join(user) {
      await join(user, pick(rooms));
    },
    async leave(user) {
      if (!user.room) return;
      const roomId = user.room;
      user.room = null;
      await call(user.socket, "room:leave", { roomId }).catch(() => {});
    },
    async reload(user) {
      const roomId = user.room;
      await fresh(user);
      user.room = null;
      if (roomId) await join(user, roomId);
    },
    async drop(user) {
      // The network goes; the client comes back, sometimes after the grace period.
      const roomId = user.room;
      // Cut the websocket without a close frame, and keep the client from reconnecting.
      user.socket.io.engine.transport.ws?.terminate?.();
      user.socket.close();
      user.socket = null;
      user.room = null;
      await sleep(Math.random() * (GRACE_SECS + 1) * 1000);
      await fresh(user);
      if (roomId) await join(user, roomId);
    },
    async kick(user) {
      const others = users.filter((u) => u !== user && u.room && u.room === user.room);
      if (!user.room || others.length === 0) return;
      await call(user.socket, "room:kick", { roomId: user.room, userId: pick(others).id }).catch(() => {});
    },
    async restJoin(user) {
      // A seat taken over REST that no socket ever holds: released after the grace period.
      await api(s, "POST", `/api/rooms/${pick(rooms)}/join`, { token: user.token });
    },
  };
  const names = Object.keys(ops);
  const until = Date.now() + CHURN_MS;
  await Promise.all(
    users.map(async (user) => {
      while (Date.now() < until) {
        await ops[pick(names)](user);
        await sleep(Math.random() * 300);
      }
    }),
  );

  // Quiet now: REST-only seats and dropped sockets run out their grace period.
  await settle((GRACE_SECS + 3) * 1000);
  for (const roomId of rooms) {
    const { status, body } = await api(s, "GET", `/api/rooms/${roomId}`);
    assert.equal(status, 200);
    const seated = new Set(body.status === "LIVE" ? body.participants.map((p) => p.userId) : []);
    const believed = new Set(users.filter((u) => u.room === roomId && u.socket?.connected).map((u) => u.id));
    assert.deepEqual([...seated].sort(), [...believed].sort(), `room ${roomId}: database vs sockets`);
    assert.equal(body.participantCount ?? seated.size, body.status === "LIVE" ? seated.size : 0);
  }

  // Everyone goes: after the grace period no room is live.
  for (const user of users) user.socket?.close();
  await settle((GRACE_SECS + 3) * 1000);
  const { body } = await api(s, "GET", "/api/rooms?status=LIVE&limit=100");
  assert.deepEqual(
    body.rooms.map((r) => `${r.id} (${r.participantCount})`),
    [],
    "rooms still live with nobody connected",
  );
});
