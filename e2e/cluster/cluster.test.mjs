// Several replicas of the real binary sharing PostgreSQL and Redis must look like one server:
// the lobby, room events, mesh signaling, seat limits, presence after a crash, rate limits,
// and recovery when Redis restarts.
import assert from "node:assert/strict";
import { after, afterEach, describe, test } from "node:test";

import {
  api,
  call,
  closeAll,
  cluster,
  connect,
  eventually,
  guest,
  next,
  readyz,
  redisCli,
  redisUp,
  room,
  servicesMissing,
  startRedis,
  stopRedis,
} from "./harness.mjs";

const skip = servicesMissing();
const clusters = [];
async function newCluster(name) {
  const c = await cluster(name);
  clusters.push(c);
  return c;
}

afterEach(async () => {
  closeAll();
  while (clusters.length) await clusters.pop().close();
});
after(() => {
  // Leave Redis running for whoever comes next, even if a test stopped it and failed.
  if (!redisUp()) startRedis();
});

describe("cluster", { skip: skip ?? false }, () => {
  test("the lobby of every replica hears rooms created, filled, emptied and ended anywhere", async () => {
    const c = await newCluster("lobby");
    const a = await c.replica();
    const b = await c.replica();
    const watcherOnB = await connect(b, null);
    const watcherOnA = await connect(a, null);
    const host = await guest(a, "Host");
    const visitor = await guest(b, "Visitor");

    const created = next(watcherOnB, "room:list-update", (u) => u.action === "created");
    const roomId = await room(a, host, { title: "Made on A" });
    const seen = await created;
    assert.equal(seen.room.id, roomId);
    assert.equal(seen.room.participantCount, 1);

    const filled = next(watcherOnA, "room:list-update", (u) => u.room.id === roomId && u.room.participantCount === 2);
    assert.equal((await api(b, "POST", `/api/rooms/${roomId}/join`, { token: visitor.token })).status, 200);
    assert.equal((await filled).action, "updated");

    const emptied = next(watcherOnB, "room:list-update", (u) => u.room.id === roomId && u.room.participantCount === 1);
    assert.equal((await api(b, "POST", `/api/rooms/${roomId}/leave`, { token: visitor.token })).status, 200);
    await emptied;

    const ended = next(watcherOnB, "room:list-update", (u) => u.room.id === roomId && u.action === "ended");
    assert.equal((await api(a, "DELETE", `/api/rooms/${roomId}`, { token: host.token })).status, 200);
    assert.equal((await ended).room.status, "ENDED");

    // The seat-count cache followed the events, and the ended room left a tombstone.
    assert.equal(redisCli("sismember", `${c.prefix}rooms:live`, roomId), "0");
    assert.equal(redisCli("hget", `${c.prefix}room:${roomId}`, "ended"), "1");
  });

  test("chat, media state, hands, mesh signaling and kicks reach room members on other replicas", async () => {
    const c = await newCluster("room");
    // Mesh mode: the webrtc:* relay between browsers is what this test follows across replicas.
    const a = await c.replica({ TALKCONNECT__MEDIA__MODE: "mesh" });
    const b = await c.replica({ TALKCONNECT__MEDIA__MODE: "mesh" });
    const host = await guest(a, "Host");
    const visitor = await guest(b, "Visitor");
    const roomId = await room(a, host, { title: "Split room" });
    const hostSocket = await connect(a, host);
    const visitorSocket = await connect(b, visitor);
    assert.equal((await call(hostSocket, "room:join", { roomId })).ok, true);
    const joined = next(hostSocket, "room:user-joined", (e) => e.user.id === visitor.id);
    assert.equal((await call(visitorSocket, "room:join", { roomId })).ok, true);
    await joined;

    const heard = next(hostSocket, "chat:message");
    assert.equal((await call(visitorSocket, "chat:message", { message: "hello from B" })).ok, true);
    assert.equal((await heard).message.message, "hello from B");

    const muted = next(visitorSocket, "media:user-muted");
    await call(hostSocket, "media:toggle-mic", { isMuted: true });
    assert.deepEqual(await muted, { roomId, userId: host.id, isMuted: true });

    const hand = next(hostSocket, "hand:raised");
    await call(visitorSocket, "hand:raise", {});
    assert.equal((await hand).userId, visitor.id);

    // Mesh relay: the target's sockets are found on the other replica (fetchSockets over Redis).
    const offer = next(visitorSocket, "webrtc:offer");
    const relayed = await call(hostSocket, "webrtc:offer", { targetUserId: visitor.id, sdp: "v=0 from A" });
    assert.equal(relayed.ok, true, JSON.stringify(relayed));
    const got = await offer;
    assert.equal(got.sdp, "v=0 from A");
    assert.equal(got.senderUserId, host.id);
    const answer = next(hostSocket, "webrtc:answer");
    assert.equal((await call(visitorSocket, "webrtc:answer", { targetUserId: host.id, sdp: "v=0 from B" })).ok, true);
    assert.equal((await answer).senderUserId, visitor.id);

    const kicked = next(visitorSocket, "room:user-kicked");
    assert.equal((await call(hostSocket, "room:kick", { userId: visitor.id })).ok, true);
    assert.equal((await kicked).userId, visitor.id);
    // Out of the room on B too: a relay to the kicked user no longer finds them.
    const after = await call(hostSocket, "webrtc:offer", { targetUserId: visitor.id, sdp: "x" });
    assert.equal(after.ok, false);
    assert.equal(after.error.code, "PARTICIPANT_NOT_FOUND");
  });

  test("50 joins spread over three replicas on a 6-seat room admit exactly 5", async () => {
    const c = await newCluster("seats");
    const replicas = [await c.replica(), await c.replica(), await c.replica()];
    const host = await guest(replicas[0], "Host");
    const roomId = await room(replicas[0], host, { title: "Race", maxParticipants: 6 });
    const people = await Promise.all(
      Array.from({ length: 50 }, (_, i) => guest(replicas[i % 3], `Racer ${i}`)),
    );
    const answers = await Promise.all(
      people.map((p, i) => api(replicas[i % 3], "POST", `/api/rooms/${roomId}/join`, { token: p.token })),
    );
    const admitted = answers.filter((r) => r.status === 200).length;
    const full = answers.filter((r) => r.status === 409 && r.body.error.code === "ROOM_FULL").length;
    assert.equal(admitted, 5);
    assert.equal(full, 45);
    const detail = await api(replicas[1], "GET", `/api/rooms/${roomId}`);
    assert.equal(detail.body.participantCount, 6);
  });

  test("a killed replica's seats are released by the others, and its empty rooms end", async () => {
    const fast = {
      TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "2",
      TALKCONNECT__CLUSTER__PRESENCE_TTL_SECS: "3",
    };
    const c = await newCluster("crash");
    const a = await c.replica(fast);
    const b = await c.replica(fast);
    const host = await guest(a, "Host");
    const visitor = await guest(b, "On B");
    const loner = await guest(b, "Alone on B");
    const shared = await room(a, host, { title: "Shared" });
    const lonely = await room(b, loner, { title: "Only on B" });
    const hostSocket = await connect(a, host);
    await call(hostSocket, "room:join", { roomId: shared });
    const visitorSocket = await connect(b, visitor, { reconnection: false });
    await call(visitorSocket, "room:join", { roomId: shared });
    const lonerSocket = await connect(b, loner, { reconnection: false });
    await call(lonerSocket, "room:join", { roomId: lonely });
    const lobbyOnA = await connect(a, null);

    // Longer than the grace period: the seats are held by B's sockets, not by a clock.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal((await api(a, "GET", `/api/rooms/${shared}`)).body.participantCount, 2);

    const left = next(hostSocket, "room:user-left", (e) => e.userId === visitor.id, 30_000);
    const ended = next(lobbyOnA, "room:list-update", (u) => u.room.id === lonely && u.action === "ended", 30_000);
    await b.kill();
    assert.deepEqual(await left, { roomId: shared, userId: visitor.id, newHostId: null });
    assert.equal((await ended).room.status, "ENDED");
    assert.equal((await api(a, "GET", `/api/rooms/${shared}`)).body.participantCount, 1);
    assert.equal((await api(a, "GET", `/api/rooms/${lonely}`)).body.status, "ENDED");
  });

  test("a replica stopped gracefully hands its seats to the grace clock: a user back through another replica keeps the seat", async () => {
    const c = await newCluster("handover");
    const a = await c.replica({ TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "60" });
    const b = await c.replica({ TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "60" });
    const host = await guest(a, "Host");
    const visitor = await guest(b, "Moves");
    const roomId = await room(a, host, { title: "Handover" });
    const hostSocket = await connect(a, host);
    await call(hostSocket, "room:join", { roomId });
    const first = await connect(b, visitor, { reconnection: false });
    const firstJoin = await call(first, "room:join", { roomId });
    await b.stop();
    // B's socket left at once: the seat is on the grace clock before any presence expiry.
    assert.notEqual(redisCli("zscore", `${c.prefix}presence:unattended`, `${roomId}|${visitor.id}`), "");
    const again = await connect(a, visitor);
    const rejoin = await call(again, "room:join", { roomId });
    assert.equal(rejoin.ok, true);
    assert.equal(rejoin.participant.joinedAt, firstJoin.participant.joinedAt, "the same seat");
    assert.equal(rejoin.room.participantCount, 2);
  });

  test("rate limits are counted once for the whole cluster", async () => {
    const limited = {
      TALKCONNECT__RATE_LIMIT__ENABLED: "true",
      TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__COUNT: "3",
      TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__PER_SECS: "600",
    };
    const c = await newCluster("limits");
    const a = await c.replica(limited);
    const b = await c.replica(limited);
    const body = (n) => ({ body: { displayName: `Guest ${n}` } });
    assert.equal((await api(a, "POST", "/api/auth/guest", body(1))).status, 201);
    assert.equal((await api(b, "POST", "/api/auth/guest", body(2))).status, 201);
    assert.equal((await api(a, "POST", "/api/auth/guest", body(3))).status, 201);
    // Each replica saw at most two requests; together they spent the budget of three.
    const refused = await api(b, "POST", "/api/auth/guest", body(4));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, "RATE_LIMITED");
  });

  test("Redis restarted: replicas report not ready, reconnect by themselves and resynchronise the lobby", async () => {
    const c = await newCluster("outage");
    const a = await c.replica();
    const b = await c.replica();
    assert.deepEqual(await readyz(a), { status: 200, code: "ready" });
    const host = await guest(a, "Host");
    const lobbyOnB = await connect(b, null);

    stopRedis();
    try {
      await eventually(async () => (await readyz(a)).status === 503, "A reports not ready");
      assert.deepEqual(await readyz(b), { status: 503, code: "REDIS_UNAVAILABLE" });
      // A keeps serving what it can: a room created during the outage (B cannot hear of it).
      const during = await room(a, host, { title: "Made during the outage" });
      const resynced = next(lobbyOnB, "room:list-update", (u) => u.room.id === during, 30_000);
      startRedis();
      await eventually(async () => (await readyz(a)).status === 200, "A ready again");
      await eventually(async () => (await readyz(b)).status === 200, "B ready again");
      // B's lobby learns of the room it missed when its pub/sub link came back.
      assert.equal((await resynced).room.title, "Made during the outage");
    } finally {
      if (!redisUp()) startRedis();
    }
    // And new events flow again.
    const created = next(lobbyOnB, "room:list-update", (u) => u.action === "created");
    const visitor = await guest(a, "Later");
    const later = await room(a, visitor, { title: "After recovery" });
    assert.equal((await created).room.id, later);
  });
});
