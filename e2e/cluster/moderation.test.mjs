// Moderation where its state crosses replicas (docs/MODERATION.md): a lock set through one
// replica refuses a stranger on the other, a hard mute given on one is enforced on a socket of
// the other, and an admin's ban on one throws the user's socket out of the other, with the real
// binary on PostgreSQL + Redis and the official socket.io-client.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { api, call, closeAll, cluster, connect, eventually, guest, next, room, servicesMissing } from "./harness.mjs";

const skip = servicesMissing();
const clusters = [];

afterEach(async () => {
  closeAll();
  while (clusters.length) await clusters.pop().close();
});

async function register(server, username) {
  const { status, body } = await api(server, "POST", "/api/auth/register", {
    body: { username, email: `${username}@example.test`, password: "correct horse battery", displayName: username },
  });
  assert.equal(status, 201, JSON.stringify(body));
  return { id: body.user.id, token: body.token, name: username };
}

describe("moderation across replicas", { skip: skip ?? false }, () => {
  test("a lock, a hard mute and a ban made through one replica hold on the other", async () => {
    const c = await cluster("moderation");
    clusters.push(c);
    const env = { TALKCONNECT__MODERATION__ADMINS: "warden" };
    const a = await c.replica(env);
    const b = await c.replica(env);

    const host = await guest(a, "Host");
    const member = await guest(b, "Member");
    const stranger = await guest(b, "Stranger");
    const roomId = await room(a, host, { title: "Crossing" });
    const hostSocket = await connect(a, host);
    assert.equal((await call(hostSocket, "room:join", { roomId })).ok, true);
    const memberSocket = await connect(b, member);
    assert.equal((await call(memberSocket, "room:join", { roomId })).ok, true);
    const lobbyOnB = await connect(b, null);

    // The lock: set on A, the lobby on B shows it without the key, a join on B needs the key.
    const listed = next(lobbyOnB, "room:list-update", (u) => u.room.id === roomId && u.room.isLocked === true);
    const locked = await call(hostSocket, "room:lock", { roomId, locked: true });
    assert.equal(locked.ok, true, JSON.stringify(locked));
    const key = locked.roomKey;
    assert.ok(typeof key === "string" && key.length >= 8, "a room key");
    const update = await listed;
    assert.ok(!JSON.stringify(update).includes(key), "the lobby never carries the key");
    const refused = await api(b, "POST", `/api/rooms/${roomId}/join`, { token: stranger.token });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "ROOM_LOCKED");
    const wrong = await api(b, "POST", `/api/rooms/${roomId}/join`, { token: stranger.token, body: { roomKey: "nope-nope" } });
    assert.equal(wrong.body.error.code, "BAD_ROOM_KEY");
    const strangerSocket = await connect(b, stranger);
    const joined = await call(strangerSocket, "room:join", { roomId, roomKey: key });
    assert.equal(joined.ok, true, JSON.stringify(joined));

    // The hard mute: given on A, heard and enforced on B.
    const heard = next(memberSocket, "room:participant-updated", (u) => u.participant.userId === member.id && u.participant.micLocked);
    const muted = await call(hostSocket, "room:hard-mute", { roomId, userId: member.id, mic: true });
    assert.equal(muted.ok, true, JSON.stringify(muted));
    assert.equal(muted.participant.micLocked, true);
    assert.equal(muted.participant.isMuted, true);
    await heard;
    const unmute = await call(memberSocket, "media:toggle-mic", { roomId, isMuted: false });
    assert.equal(unmute.ok, false);
    assert.equal(unmute.error.code, "MUTED_BY_HOST");
    const lifted = await call(hostSocket, "room:hard-mute", { roomId, userId: member.id, mic: false });
    assert.equal(lifted.participant.micLocked, false);
    assert.equal((await call(memberSocket, "media:toggle-mic", { roomId, isMuted: false })).ok, true);

    // The ban: an admin on A; the stranger's socket on B is told and closed, the token refused on
    // B, and the seat freed.
    const warden = await register(a, "warden");
    const told = next(strangerSocket, "session:banned");
    const closed = new Promise((resolve) => strangerSocket.once("disconnect", resolve));
    const ban = await api(a, "POST", "/api/admin/bans", { token: warden.token, body: { userId: stranger.id, reason: "spam" } });
    assert.ok(ban.status === 200 || ban.status === 201, JSON.stringify(ban));
    await told;
    await closed;
    const rest = await api(b, "GET", "/api/auth/me", { token: stranger.token });
    assert.equal(rest.status, 403);
    assert.equal(rest.body.error.code, "BANNED");
    await assert.rejects(connect(b, stranger, { reconnection: false }), /BANNED/);
    await eventually(async () => {
      const detail = await api(b, "GET", `/api/rooms/${roomId}`);
      return !detail.body.participants.some((p) => p.userId === stranger.id);
    }, "the banned user's seat is freed");
  });
});
