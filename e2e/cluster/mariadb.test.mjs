// A cluster on MariaDB + Redis (a binary built with the mysql feature; scripts/test builds it
// so): two replicas started together on a fresh database migrate it once, and behave as one
// server, as on PostgreSQL: the lobby hears a room made on the other replica, people on both
// replicas share a room and its chat, 50 joins spread over both on a 6-seat room admit exactly
// 5, and the last one out ends the room everywhere.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { afterEach, describe, test } from "node:test";

import { api, call, closeAll, cluster, connect, guest, next, room, servicesMissing } from "./harness.mjs";

const skip = servicesMissing({ database: "mysql" });
const clusters = [];

afterEach(async () => {
  closeAll();
  while (clusters.length) await clusters.pop().close();
});

describe("a cluster on MariaDB and Redis", { skip: skip ?? false }, () => {
  test("two replicas migrate once, share rooms, seats, chat and the lobby", async () => {
    const c = await cluster("mariadb", { database: "mysql" });
    clusters.push(c);
    // Started together on an empty database: the migrations take turns (GET_LOCK).
    const [a, b] = await Promise.all([c.replica(), c.replica()]);
    const migrated = spawnSync(
      "mariadb",
      ["-h", "127.0.0.1", "-u", "talkconnect_test", "-ptalkconnect_test", "-N", "-e",
        `SELECT COUNT(*) FROM ${c.database}.__diesel_schema_migrations`],
      { encoding: "utf8" },
    );
    assert.equal(migrated.status, 0, migrated.stderr);
    assert.equal(migrated.stdout.trim(), "2", "each migration ran once");

    const lobbyOnB = await connect(b, null);
    const host = await guest(a, "Chủ phòng");
    const created = next(lobbyOnB, "room:list-update", (u) => u.action === "created");
    const roomId = await room(a, host, { title: "Phòng tiếng Việt", maxParticipants: 6 });
    const seen = await created;
    assert.equal(seen.room.id, roomId);
    assert.equal(seen.room.title, "Phòng tiếng Việt");

    // Search folds accents on MySQL as on the other two.
    const found = await api(b, "GET", `/api/rooms?q=${encodeURIComponent("tieng viet")}`);
    assert.equal(found.status, 200);
    assert.deepEqual(found.body.rooms.map((r) => r.id), [roomId]);

    const visitor = await guest(b, "Visitor");
    const hostSocket = await connect(a, host);
    const visitorSocket = await connect(b, visitor);
    assert.equal((await call(hostSocket, "room:join", { roomId })).ok, true);
    assert.equal((await call(visitorSocket, "room:join", { roomId })).ok, true);
    const heard = next(hostSocket, "chat:message");
    assert.equal((await call(visitorSocket, "chat:message", { message: "xin chào từ B" })).ok, true);
    assert.equal((await heard).message.message, "xin chào từ B");
    const history = await api(a, "GET", `/api/rooms/${roomId}/chat`, { token: host.token });
    assert.equal(history.status, 200);
    assert.equal(history.body.messages[0].message, "xin chào từ B");

    // Host and visitor hold 2 of 6 seats: 4 more, whatever replica they come through.
    const people = await Promise.all(Array.from({ length: 50 }, (_, i) => guest(i % 2 ? a : b, `Racer ${i}`)));
    const answers = await Promise.all(
      people.map((p, i) => api(i % 2 ? a : b, "POST", `/api/rooms/${roomId}/join`, { token: p.token })),
    );
    assert.equal(answers.filter((r) => r.status === 200).length, 4);
    assert.equal(answers.filter((r) => r.status === 409 && r.body.error.code === "ROOM_FULL").length, 46);
    assert.equal((await api(b, "GET", `/api/rooms/${roomId}`)).body.participantCount, 6);

    for (const [i, p] of people.entries()) {
      const replica = i % 2 ? a : b;
      if (answers[i].status === 200) {
        assert.equal((await api(replica, "POST", `/api/rooms/${roomId}/leave`, { token: p.token })).status, 200);
      }
    }
    const ended = next(lobbyOnB, "room:list-update", (u) => u.room.id === roomId && u.action === "ended");
    assert.equal((await call(visitorSocket, "room:leave", { roomId })).ok, true);
    assert.equal((await call(hostSocket, "room:leave", { roomId })).ok, true);
    assert.equal((await ended).room.status, "ENDED");
  });
});
