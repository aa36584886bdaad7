// The room events of the design over the real binary, with the official socket.io-client.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { api, call, closeAll, connect, guest, next, record, room, startServer } from "./harness.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAll();
  await server?.stop();
});

describe("lobby", () => {
  test("every lobby socket hears rooms open, fill, empty and end", async () => {
    const watcher = await connect(server, null); // anonymous lobby watcher
    const host = await guest(server, "Lan");
    const visitor = await guest(server, "Minh");

    const created = next(watcher, "room:list-update", (u) => u.action === "created");
    const roomId = await room(server, host, { title: "Live lobby" });
    const c = await created;
    assert.equal(c.room.id, roomId);
    assert.equal(c.room.participantCount, 1);
    assert.equal(c.room.host.displayName, "Lan");

    const visitorSocket = await connect(server, visitor);
    const filled = next(watcher, "room:list-update", (u) => u.room.id === roomId && u.room.participantCount === 2);
    const joined = await call(visitorSocket, "room:join", { roomId });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    assert.equal(joined.room.participantCount, 2);
    assert.equal(joined.participant.role, "PARTICIPANT");
    assert.equal((await filled).action, "updated");

    const emptied = next(watcher, "room:list-update", (u) => u.room.id === roomId && u.room.participantCount === 1);
    const left = await call(visitorSocket, "room:leave", { roomId });
    assert.deepEqual(left, { ok: true, roomEnded: false, newHostId: null });
    await emptied;

    const ended = next(watcher, "room:list-update", (u) => u.room.id === roomId && u.action === "ended");
    const hostSocket = await connect(server, host);
    await call(hostSocket, "room:join", { roomId });
    const last = await call(hostSocket, "room:leave", { roomId });
    assert.equal(last.roomEnded, true);
    assert.equal((await ended).room.status, "ENDED");
  });
});

describe("inside a room", () => {
  test("chat is persisted, then broadcast to the room with its sender", async () => {
    const host = await guest(server, "Host");
    const visitor = await guest(server, "Guest");
    const roomId = await room(server, host, { title: "Chat room" });
    const hostSocket = await connect(server, host);
    const visitorSocket = await connect(server, visitor);
    await call(hostSocket, "room:join", { roomId });
    const joinedNotice = next(hostSocket, "room:user-joined", (e) => e.user.id === visitor.id);
    await call(visitorSocket, "room:join", { roomId });
    const notice = await joinedNotice;
    assert.equal(notice.roomId, roomId);
    assert.equal(notice.participant.displayName, "Guest");

    const heard = next(hostSocket, "chat:message");
    const echoed = next(visitorSocket, "chat:message");
    const sent = await call(visitorSocket, "chat:message", { roomId, message: "  <b>xin chào</b>  " });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    assert.equal(sent.message.message, "<b>xin chào</b>");
    const got = await heard;
    assert.equal(got.roomId, roomId);
    assert.equal(got.message.id, sent.message.id);
    assert.equal(got.sender.id, visitor.id);
    assert.equal((await echoed).message.id, sent.message.id);

    const history = await api(server, "GET", `/api/rooms/${roomId}/chat`, { token: host.token });
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.messages.map((m) => m.message), ["<b>xin chào</b>"]);

    for (const bad of ["", "   ", "x".repeat(1001)]) {
      const refused = await call(visitorSocket, "chat:message", { roomId, message: bad });
      assert.equal(refused.ok, false);
      assert.equal(refused.error.code, "VALIDATION_FAILED");
    }
    const wrongType = await call(visitorSocket, "chat:message", { roomId, message: 42 });
    assert.equal(wrongType.error.code, "INVALID_BODY");
    const notUuid = await call(visitorSocket, "room:join", { roomId: "nope" });
    assert.equal(notUuid.error.code, "INVALID_BODY");
    const unknown = await call(visitorSocket, "room:join", { roomId: "00000000-0000-4000-8000-000000000000" });
    assert.equal(unknown.error.code, "ROOM_NOT_FOUND");
  });

  test("mic, camera and hands reach the room and are stored", async () => {
    const host = await guest(server, "Host");
    const visitor = await guest(server, "Guest");
    const roomId = await room(server, host, { title: "Media" });
    const hostSocket = await connect(server, host);
    const visitorSocket = await connect(server, visitor);
    await call(hostSocket, "room:join", { roomId });
    await call(visitorSocket, "room:join", { roomId });

    const muted = next(hostSocket, "media:user-muted");
    assert.equal((await call(visitorSocket, "media:toggle-mic", { roomId, isMuted: true })).ok, true);
    assert.deepEqual(await muted, { roomId, userId: visitor.id, isMuted: true });
    const video = next(hostSocket, "media:user-video");
    await call(visitorSocket, "media:toggle-video", { roomId, isVideoOff: true });
    assert.deepEqual(await video, { roomId, userId: visitor.id, isVideoOff: true });
    const raised = next(hostSocket, "hand:raised");
    await call(visitorSocket, "hand:raise", { roomId });
    assert.deepEqual(await raised, { roomId, userId: visitor.id });

    const detail = await api(server, "GET", `/api/rooms/${roomId}`);
    const seat = detail.body.participants.find((p) => p.userId === visitor.id);
    assert.deepEqual([seat.isMuted, seat.isVideoOff, seat.handRaised], [true, true, true]);

    // Only a host or co-host lowers someone else's hand.
    const notHost = await call(visitorSocket, "hand:lower", { roomId, userId: host.id });
    assert.equal(notHost.error.code, "NOT_COHOST");
    const lowered = next(visitorSocket, "hand:lowered");
    assert.equal((await call(hostSocket, "hand:lower", { roomId, userId: visitor.id })).ok, true);
    assert.deepEqual(await lowered, { roomId, userId: visitor.id });
    const badType = await call(visitorSocket, "media:toggle-mic", { roomId, isMuted: "yes" });
    assert.equal(badType.error.code, "INVALID_BODY");
  });

  test("the host kicks: everyone hears it, the kicked user's sockets leave and cannot rejoin", async () => {
    const host = await guest(server, "Host");
    const troll = await guest(server, "Troll");
    const roomId = await room(server, host, { title: "Moderated" });
    const hostSocket = await connect(server, host);
    const trollTab1 = await connect(server, troll);
    const trollTab2 = await connect(server, troll);
    await call(hostSocket, "room:join", { roomId });
    await call(trollTab1, "room:join", { roomId });
    await call(trollTab2, "room:join", { roomId });

    const notHost = await call(trollTab1, "room:kick", { roomId, userId: host.id });
    assert.equal(notHost.error.code, "NOT_COHOST");

    const hostHears = next(hostSocket, "room:user-kicked");
    const tab1Hears = next(trollTab1, "room:user-kicked");
    const tab2Hears = next(trollTab2, "room:user-kicked");
    const kicked = await call(hostSocket, "room:kick", { roomId, userId: troll.id });
    assert.equal(kicked.ok, true, JSON.stringify(kicked));
    for (const heard of [hostHears, tab1Hears, tab2Hears]) {
      assert.deepEqual(await heard, { roomId, userId: troll.id });
    }
    const trollChat = record(trollTab2, "chat:message");
    const afterKick = await call(trollTab1, "chat:message", { roomId, message: "still here?" });
    assert.equal(afterKick.error.code, "NOT_A_PARTICIPANT");
    const rejoin = await call(trollTab2, "room:join", { roomId });
    assert.equal(rejoin.error.code, "KICKED");
    // The host's message is heard by the host, not by the kicked tabs that left the room.
    const hostEcho = next(hostSocket, "chat:message");
    await call(hostSocket, "chat:message", { roomId, message: "bye" });
    await hostEcho;
    const trollPing = next(trollTab2, "room:list-update", (u) => u.room.title === "Sentinel");
    await room(server, host, { title: "Sentinel" });
    await trollPing;
    assert.deepEqual(trollChat, []);
  });

  test("leaving in one tab leaves the room for the user in every tab", async () => {
    const host = await guest(server, "Host");
    const user = await guest(server, "Two tabs");
    const roomId = await room(server, host, { title: "Tabs" });
    const hostSocket = await connect(server, host);
    await call(hostSocket, "room:join", { roomId });
    const tab1 = await connect(server, user);
    const tab2 = await connect(server, user);
    await call(tab1, "room:join", { roomId });
    await call(tab2, "room:join", { roomId });

    const tab2Hears = next(tab2, "room:user-left", (e) => e.userId === user.id);
    const hostHears = next(hostSocket, "room:user-left", (e) => e.userId === user.id);
    await call(tab1, "room:leave", { roomId });
    await tab2Hears;
    await hostHears;
    const stale = await call(tab2, "chat:message", { roomId, message: "hello?" });
    assert.equal(stale.error.code, "NOT_A_PARTICIPANT");
    const detail = await api(server, "GET", `/api/rooms/${roomId}`);
    assert.equal(detail.body.participantCount, 1);
  });

  test("the room ending tells everyone inside", async () => {
    const host = await guest(server, "Host");
    const visitor = await guest(server, "Guest");
    const roomId = await room(server, host, { title: "Closing" });
    const hostSocket = await connect(server, host);
    const visitorSocket = await connect(server, visitor);
    await call(hostSocket, "room:join", { roomId });
    await call(visitorSocket, "room:join", { roomId });
    const told = next(visitorSocket, "room:ended");
    const ended = await call(hostSocket, "room:end", { roomId });
    assert.equal(ended.ok, true);
    assert.deepEqual(await told, { roomId, reason: "host_ended" });
    const again = await call(visitorSocket, "room:join", { roomId });
    assert.equal(again.error.code, "ROOM_ENDED");
  });
});

describe("webrtc relay (mesh mode)", () => {
  test("is refused in SFU mode (the default): strangers' addresses stay private", async () => {
    const host = await guest(server, "Host");
    const peer = await guest(server, "Peer");
    const roomId = await room(server, host, { title: "SFU room" });
    const hostSocket = await connect(server, host);
    const peerSocket = await connect(server, peer);
    await call(hostSocket, "room:join", { roomId });
    await call(peerSocket, "room:join", { roomId });
    const offers = record(peerSocket, "webrtc:offer");
    const refused = await call(hostSocket, "webrtc:offer", { targetUserId: peer.id, sdp: "v=0" });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "WRONG_MEDIA_MODE");
    const sentinel = next(peerSocket, "chat:message");
    await call(hostSocket, "chat:message", { roomId, message: "sentinel" });
    await sentinel;
    assert.deepEqual(offers, []);
  });

  test("reaches only the target, only inside the same room", async () => {
    const server = await startServer({ env: { TALKCONNECT__MEDIA__MODE: "mesh" } });
    after(() => server.stop());
    const host = await guest(server, "Host");
    const peer = await guest(server, "Peer");
    const stranger = await guest(server, "Stranger");
    const roomId = await room(server, host, { title: "Mesh" });
    const otherRoom = await room(server, stranger, { title: "Elsewhere" });
    const hostSocket = await connect(server, host);
    const peerSocket = await connect(server, peer);
    const strangerSocket = await connect(server, stranger);
    await call(hostSocket, "room:join", { roomId });
    await call(peerSocket, "room:join", { roomId });
    await call(strangerSocket, "room:join", { roomId: otherRoom });
    const offersToPeer = record(peerSocket, "webrtc:offer");
    const offersToHost = record(hostSocket, "webrtc:offer");

    const fromStranger = await call(strangerSocket, "webrtc:offer", { targetUserId: peer.id, sdp: "v=0 stranger" });
    assert.equal(fromStranger.ok, false);
    assert.equal(fromStranger.error.code, "PARTICIPANT_NOT_FOUND");

    const offer = next(peerSocket, "webrtc:offer");
    const sent = await call(hostSocket, "webrtc:offer", { targetUserId: peer.id, sdp: "v=0 host" });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const got = await offer;
    assert.equal(got.sdp, "v=0 host");
    assert.equal(got.senderUserId, host.id);
    assert.equal(got.targetUserId, peer.id);
    const answer = next(hostSocket, "webrtc:answer");
    await call(peerSocket, "webrtc:answer", { targetUserId: host.id, sdp: "v=0 answer" });
    assert.equal((await answer).senderUserId, peer.id);
    const candidate = next(peerSocket, "webrtc:ice-candidate");
    await call(hostSocket, "webrtc:ice-candidate", { targetUserId: peer.id, candidate: { candidate: "candidate:1", sdpMid: "0" } });
    assert.equal((await candidate).candidate.candidate, "candidate:1");

    assert.deepEqual(offersToPeer.map((o) => o.sdp), ["v=0 host"], "nothing from the stranger");
    assert.deepEqual(offersToHost, [], "an offer goes to its target only");
    const missingTarget = await call(hostSocket, "webrtc:offer", { sdp: "x" });
    assert.equal(missingTarget.error.code, "INVALID_BODY");
    const toSelf = await call(hostSocket, "webrtc:offer", { targetUserId: host.id, sdp: "v=0 self" });
    assert.equal(toSelf.error.code, "INVALID_TARGET");
    assert.deepEqual(offersToHost, [], "nothing comes back to the sender");
    const sfuJoin = await call(hostSocket, "sfu:join", { roomId });
    assert.equal(sfuJoin.error.code, "WRONG_MEDIA_MODE");
  });
});

describe("sfu signaling", () => {
  test("a participant joins the SFU from inside its room; bad signaling gets a clear error", async () => {
    const host = await guest(server, "Host");
    const outsider = await guest(server, "Outsider");
    const roomId = await room(server, host, { title: "Media" });
    const hostSocket = await connect(server, host);
    const outsiderSocket = await connect(server, outsider);
    await call(hostSocket, "room:join", { roomId });

    const early = await call(hostSocket, "sfu:candidate", { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host" });
    assert.equal(early.error.code, "SFU_NOT_JOINED");
    const notInside = await call(outsiderSocket, "sfu:join", { roomId });
    assert.equal(notInside.error.code, "NOT_IN_ROOM");

    const joined = await call(hostSocket, "sfu:join", { roomId });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    assert.deepEqual(joined.iceServers, []);
    const badSdp = await call(hostSocket, "sfu:offer", { sdp: "this is not SDP" });
    assert.equal(badSdp.ok, false);
    assert.equal(badSdp.error.code, "SFU_INVALID_SDP");
    const malformed = await call(hostSocket, "sfu:offer", { nope: 1 });
    assert.equal(malformed.error.code, "SFU_MALFORMED_MESSAGE");
    const candidateFirst = await call(hostSocket, "sfu:candidate", { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host" });
    assert.equal(candidateFirst.error.code, "SFU_CANDIDATE_BEFORE_DESCRIPTION");
    const unexpected = await call(hostSocket, "sfu:answer", { sdp: "v=0" });
    assert.equal(unexpected.ok, false);
    // The room goes on: chat still works, and leaving closes the media session.
    const echo = next(hostSocket, "chat:message");
    await call(hostSocket, "chat:message", { roomId, message: "still here" });
    await echo;
    const closed = next(hostSocket, "sfu:closed");
    await call(hostSocket, "room:leave", { roomId });
    assert.equal((await closed).reason, "left");
  });
});

describe("authentication", () => {
  test("a bad token is refused with a reason; anonymous sockets only watch", async () => {
    await assert.rejects(connect(server, { token: "not-a-jwt" }), (err) => err.message === "INVALID_TOKEN");
    const anonymous = await connect(server, null);
    const host = await guest(server, "Host");
    const roomId = await room(server, host, { title: "Members only" });
    const refused = await call(anonymous, "room:join", { roomId });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "UNAUTHENTICATED");
  });
});

describe("limits", () => {
  test("chat over its per-user rate is refused with RATE_LIMITED, others go on", async () => {
    const limited = await startServer({
      env: {
        TALKCONNECT__RATE_LIMIT__ENABLED: "true",
        TALKCONNECT__RATE_LIMIT__CHAT_PER_USER__COUNT: "3",
        TALKCONNECT__RATE_LIMIT__CHAT_PER_USER__PER_SECS: "60",
      },
    });
    try {
      const host = await guest(limited, "Chatty");
      const other = await guest(limited, "Calm");
      const roomId = await room(limited, host, { title: "Slow mode" });
      const hostSocket = await connect(limited, host);
      const otherSocket = await connect(limited, other);
      await call(hostSocket, "room:join", { roomId });
      await call(otherSocket, "room:join", { roomId });
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await call(hostSocket, "chat:message", { roomId, message: `m${i}` }));
      assert.deepEqual(answers.map((a) => a.ok), [true, true, true, false]);
      assert.equal(answers[3].error.code, "RATE_LIMITED");
      assert.equal((await call(otherSocket, "chat:message", { roomId, message: "still fine" })).ok, true);
    } finally {
      await limited.stop();
    }
  });
});
