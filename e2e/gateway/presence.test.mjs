// Seats without a connection: the grace period, reloads, REST-only seats, restarts.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { api, call, closeAll, connect, guest, next, room, startServer } from "./harness.mjs";

const servers = [];
after(async () => {
  closeAll();
  for (const s of servers) await s.stop();
});

async function server(graceSecs) {
  const s = await startServer({ env: { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: String(graceSecs) } });
  servers.push(s);
  return s;
}

describe("presence", () => {
  test("a seat whose last socket is gone is released after the grace period", async () => {
    const s = await server(1);
    const host = await guest(s, "Host");
    const visitor = await guest(s, "Leaves");
    const roomId = await room(s, host, { title: "Grace" });
    const hostSocket = await connect(s, host);
    await call(hostSocket, "room:join", { roomId });
    const visitorSocket = await connect(s, visitor);
    await call(visitorSocket, "room:join", { roomId });

    const released = next(hostSocket, "room:user-left", (e) => e.userId === visitor.id);
    visitorSocket.close();
    assert.deepEqual(await released, { roomId, userId: visitor.id, newHostId: null });
    const detail = await api(s, "GET", `/api/rooms/${roomId}`);
    assert.equal(detail.body.participantCount, 1);
  });

  test("a seat taken over REST with no socket is released too, and the last release ends the room", async () => {
    const s = await server(1);
    const host = await guest(s, "Only REST");
    const watcher = await connect(s, null);
    const ended = next(watcher, "room:list-update", (u) => u.action === "ended");
    const roomId = await room(s, host, { title: "Nobody came" });
    const e = await ended;
    assert.equal(e.room.id, roomId);
    const detail = await api(s, "GET", `/api/rooms/${roomId}`);
    assert.equal(detail.body.status, "ENDED");
  });

  test("a reload within the grace period keeps the seat", async () => {
    const s = await server(30);
    const host = await guest(s, "Host");
    const visitor = await guest(s, "Reloads");
    const roomId = await room(s, host, { title: "Reload" });
    const hostSocket = await connect(s, host);
    await call(hostSocket, "room:join", { roomId });
    const first = await connect(s, visitor);
    const firstJoin = await call(first, "room:join", { roomId });
    first.close();
    const second = await connect(s, visitor);
    const again = await call(second, "room:join", { roomId });
    assert.equal(again.ok, true);
    assert.equal(again.participant.joinedAt, firstJoin.participant.joinedAt, "the same seat");
    assert.equal(again.room.participantCount, 2);
  });
});

describe("transports and reconnection", () => {
  for (const transports of [["polling"], ["websocket"]]) {
    test(`a ${transports[0]}-only client takes part fully`, async () => {
      const s = servers[0] ?? (await server(15));
      const host = await guest(s, "Host");
      const visitor = await guest(s, "Visitor");
      const roomId = await room(s, host, { title: `Over ${transports[0]}` });
      const hostSocket = await connect(s, host, { transports });
      const visitorSocket = await connect(s, visitor, { transports });
      assert.equal(hostSocket.io.engine.transport.name, transports[0]);
      await call(hostSocket, "room:join", { roomId });
      await call(visitorSocket, "room:join", { roomId });
      const heard = next(hostSocket, "chat:message");
      await call(visitorSocket, "chat:message", { roomId, message: "over " + transports[0] });
      assert.equal((await heard).message.message, "over " + transports[0]);
    });
  }

  test("clients reconnect by themselves after a server restart and keep their seats", async () => {
    const s = await startServer({ env: { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "60" } });
    const host = await guest(s, "Host");
    const visitor = await guest(s, "Visitor");
    const roomId = await room(s, host, { title: "Survives a restart" });
    const hostSocket = await connect(s, host);
    const visitorSocket = await connect(s, visitor);
    await call(hostSocket, "room:join", { roomId });
    await call(visitorSocket, "room:join", { roomId });

    const disconnected = next(hostSocket, "disconnect", () => true);
    await s.stop({ keepData: true });
    await disconnected;
    const reconnected = next(hostSocket, "connect", () => true, 30_000);
    const visitorBack = next(visitorSocket, "connect", () => true, 30_000);
    const restarted = await startServer({
      dataDir: s.dataDir,
      port: s.port,
      env: { TALKCONNECT__REALTIME__SEAT_GRACE_SECS: "60" },
    });
    servers.push(restarted);
    await reconnected;
    await visitorBack;
    const rejoin = await call(hostSocket, "room:join", { roomId });
    assert.equal(rejoin.ok, true, JSON.stringify(rejoin));
    assert.equal(rejoin.participant.role, "HOST");
    await call(visitorSocket, "room:join", { roomId });
    const heard = next(hostSocket, "chat:message");
    await call(visitorSocket, "chat:message", { roomId, message: "back" });
    assert.equal((await heard).message.message, "back");
  });
});
