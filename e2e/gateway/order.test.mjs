// Seat changes racing each other on one room: a kick sent at the very moment its target's
// socket joins, a seat released by the grace clock at the very moment its owner comes back.
// Whichever the server does first, the sockets must end up where the database says.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { api, call, closeAll, connect, guest, record, room, settle, startServer } from "./harness.mjs";

const servers = [];
after(async () => {
  closeAll();
  for (const s of servers) await s.stop();
});

/** A server, and a host inside a fresh room of 12 seats. */
async function hostedRoom(title, env = {}) {
  const s = await startServer({ env });
  servers.push(s);
  const host = await guest(s, "Host");
  const roomId = await room(s, host, { title, maxParticipants: 12 });
  const hostSocket = await connect(s, host);
  assert.equal((await call(hostSocket, "room:join", { roomId })).ok, true);
  return { s, roomId, hostSocket };
}

const ROUNDS = 48;
// At once: fewer than the room's seats, so nobody is turned away as the room fills.
const AT_ONCE = 8;

test("a kick that races its target's join never leaves the kicked socket listening", { timeout: 120_000 }, async () => {
  const { s, roomId, hostSocket } = await hostedRoom("Kicks");

  const listening = [];
  const round = async (i) => {
    const target = await guest(s, `Target ${i}`);
    // Seated over REST first, so the socket's join is the short path (the seat is there).
    assert.equal((await api(s, "POST", `/api/rooms/${roomId}/join`, { token: target.token })).status, 200);
    const socket = await connect(s, target);
    const chat = record(socket, "chat:message");
    const [joined, kicked] = await Promise.all([
      call(socket, "room:join", { roomId }),
      call(hostSocket, "room:kick", { roomId, userId: target.id }),
    ]);
    assert.equal(kicked.ok, true, JSON.stringify(kicked));
    listening.push({ i, joined: joined.ok, chat });
  };
  for (let first = 0; first < ROUNDS; first += AT_ONCE) {
    await Promise.all(Array.from({ length: AT_ONCE }, (_, k) => round(first + k)));
  }
  const sent = await call(hostSocket, "chat:message", { roomId, message: "after the kicks" });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  await settle(1000);
  const leaks = listening.filter((l) => l.chat.some((m) => m.message?.message === "after the kicks"));
  assert.deepEqual(
    leaks.map((l) => `target ${l.i} (join ${l.joined ? "ok" : "refused"})`),
    [],
    "kicked sockets still hear the room",
  );
});

test("a seat released by the grace clock as its owner comes back: the owner knows which", { timeout: 120_000 }, async () => {
  const GRACE_SECS = 1;
  const { s, roomId } = await hostedRoom("Comebacks", { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: String(GRACE_SECS) });

  const wrong = [];
  const round = async (i) => {
    const owner = await guest(s, `Owner ${i}`);
    const socket = await connect(s, owner);
    let told = false;
    socket.on("room:user-left", (e) => {
      if (e.userId === owner.id && e.roomId === roomId) told = true;
    });
    // A seat taken over REST goes on the clock; the socket steps in around when it runs out
    // (the clock is checked once a second).
    assert.equal((await api(s, "POST", `/api/rooms/${roomId}/join`, { token: owner.token })).status, 200);
    await settle(GRACE_SECS * 1000 + Math.random() * 1200 - 200);
    told = false;
    const joined = await call(socket, "room:join", { roomId });
    // Once the clock has surely run out, the database and the socket must agree.
    await settle((GRACE_SECS + 1.5) * 1000);
    const { body } = await api(s, "GET", `/api/rooms/${roomId}`);
    const seated = body.participants.some((p) => p.userId === owner.id);
    const believes = joined.ok && !told;
    if (believes !== seated) wrong.push(`owner ${i}: join ${joined.ok ? "ok" : "refused"}, told ${told}, seated ${seated}`);
    if (seated) await call(socket, "room:leave", { roomId });
    socket.close();
  };
  for (let first = 0; first < ROUNDS / 2; first += AT_ONCE) {
    await Promise.all(Array.from({ length: AT_ONCE }, (_, k) => round(first + k)));
  }
  assert.deepEqual(wrong, [], "sockets that believe otherwise than the database");
});
