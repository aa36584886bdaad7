// The official socket.io-client v4 against our server: transports, upgrade, rooms, acks and
// binary both ways, CONNECT_ERROR, server-side disconnects, reconnection after a restart.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer } from "./server.mjs";

const TEST = { timeout: 20_000 };
let server;
const clients = [];

function client(nsp = "/", opts = {}) {
  const socket = io(server.url + nsp, { forceNew: true, reconnection: false, ...opts });
  clients.push(socket);
  return socket;
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

async function connected(socket) {
  if (!socket.connected) {
    const [err] = await Promise.race([once(socket, "connect"), once(socket, "connect_error")]);
    if (err instanceof Error) throw err;
  }
  return socket;
}

/** Events received by `socket`, in order, so a test can check what did NOT arrive. */
function recorder(socket) {
  const seen = [];
  socket.onAny((event, ...args) => seen.push([event, ...args]));
  return seen;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const socket of clients) socket.disconnect();
  await server.stop();
});

for (const transports of [["websocket"], ["polling"]]) {
  describe(`${transports[0]}-only client`, () => {
    it("connects, emits and receives events", TEST, async () => {
      const socket = await connected(client("/", { transports }));
      assert.equal(socket.io.engine.transport.name, transports[0]);
      socket.emit("message", 1, "2", { 3: [true] });
      const args = await once(socket, "message-back");
      assert.deepEqual(args, [1, "2", { 3: [true] }]);
    });

    it("gets client→server acks", TEST, async () => {
      const socket = await connected(client("/", { transports }));
      const answer = await socket.timeout(5000).emitWithAck("message-with-ack", { a: 1 });
      assert.deepEqual(answer, { a: 1 });
    });

    it("answers server→client acks", TEST, async () => {
      const socket = await connected(client("/", { transports }));
      socket.on("question", (data, callback) => callback(`answer to ${data.q}`));
      const result = await socket.timeout(5000).emitWithAck("ask-me", { q: "color" });
      assert.deepEqual(result, { ok: true, answer: ["answer to color"] });
    });

    it("sends and receives binary", TEST, async () => {
      const socket = await connected(client("/", { transports }));
      socket.emit("binary", Buffer.from([1, 2, 3]), Buffer.from([4, 5]));
      const [count, first, second, ours] = await once(socket, "binary-back");
      assert.equal(count, 2);
      assert.deepEqual([...new Uint8Array(first)], [1, 2, 3]);
      assert.deepEqual([...new Uint8Array(second)], [4, 5]);
      assert.deepEqual([...new Uint8Array(ours)], [0xde, 0xad, 0xbe, 0xef]);
    });

    it("multiplexes namespaces over one connection", TEST, async () => {
      const main = await connected(client("/", { transports }));
      const custom = await connected(main.io.socket("/custom"));
      assert.notEqual(main.id, custom.id);
      custom.emit("message", "on custom");
      assert.deepEqual(await once(custom, "message-back"), ["on custom"]);
      custom.disconnect();
      main.emit("message", "main still here");
      assert.deepEqual(await once(main, "message-back"), ["main still here"]);
    });
  });
}

describe("upgrade", () => {
  it("starts on polling and upgrades to websocket", TEST, async () => {
    const socket = client("/");
    await connected(socket);
    if (socket.io.engine.transport.name !== "websocket") {
      const [transport] = await once(socket.io.engine, "upgrade");
      assert.equal(transport.name, "websocket");
    }
    assert.equal(socket.io.engine.transport.name, "websocket");
    socket.emit("message", "after upgrade");
    assert.deepEqual(await once(socket, "message-back"), ["after upgrade"]);
  });
});

describe("rooms", () => {
  async function joined(room, transports = ["websocket"]) {
    const socket = await connected(client("/", { transports }));
    const seen = recorder(socket);
    const ack = await socket.timeout(5000).emitWithAck("join", { room });
    assert.equal(ack.ok, true);
    return { socket, seen };
  }

  it("broadcasts to a room, excluding the sender and non-members", TEST, async () => {
    const a = await joined("r1");
    const b = await joined("r1", ["polling"]);
    const c = await joined("other");
    const got = once(b.socket, "room-message");
    assert.deepEqual(await a.socket.timeout(5000).emitWithAck("to-room", { room: "r1", payload: "hi" }), { ok: true });
    assert.deepEqual(await got, ["hi"]);
    // A broadcast to everyone, sent after: whoever did not get "hi" before it never will.
    const marks = [a, b, c].map(({ socket }) => once(socket, "everyone"));
    await c.socket.timeout(5000).emitWithAck("everyone", "mark");
    await Promise.all(marks);
    assert.deepEqual(a.seen.map((e) => e[0]), ["everyone"]);
    assert.deepEqual(b.seen.map((e) => e[0]), ["room-message", "everyone"]);
    assert.deepEqual(c.seen.map((e) => e[0]), ["everyone"]);
  });

  it("io.to(room).except(room) skips the excepted members", TEST, async () => {
    const a = await joined("all");
    const b = await joined("all", ["polling"]);
    const vip = await joined("all");
    await vip.socket.timeout(5000).emitWithAck("join", { room: "vip" });
    const gotA = once(a.socket, "room-message");
    const gotB = once(b.socket, "room-message");
    await a.socket.timeout(5000).emitWithAck("to-room-except", { room: "all", except: "vip", payload: 42 });
    assert.deepEqual(await gotA, [42]);
    assert.deepEqual(await gotB, [42]);
    const mark = once(vip.socket, "everyone");
    await a.socket.timeout(5000).emitWithAck("everyone", "mark");
    await mark;
    assert.deepEqual(vip.seen.map((e) => e[0]), ["everyone"]);
  });

  it("leaving a room stops its messages", TEST, async () => {
    const a = await joined("r2");
    const b = await joined("r2");
    await b.socket.timeout(5000).emitWithAck("leave", { room: "r2" });
    await a.socket.timeout(5000).emitWithAck("to-room", { room: "r2", payload: "nobody" });
    const mark = once(b.socket, "everyone");
    await a.socket.timeout(5000).emitWithAck("everyone", "mark");
    await mark;
    assert.deepEqual(b.seen.map((e) => e[0]), ["everyone"]);
  });

  it("disconnect_sockets on a room disconnects its members", TEST, async () => {
    const a = await joined("doomed");
    const b = await joined("doomed", ["polling"]);
    const reasons = [once(a.socket, "disconnect"), once(b.socket, "disconnect")];
    await a.socket.timeout(5000).emitWithAck("disconnect-room", { room: "doomed" });
    const [[ra], [rb]] = await Promise.all(reasons);
    assert.equal(ra, "io server disconnect");
    assert.equal(rb, "io server disconnect");
  });
});

describe("connection refusal and server-side disconnect", () => {
  it("delivers CONNECT_ERROR with message and data to connect_error", TEST, async () => {
    const socket = client("/private", { auth: { token: "wrong" }, transports: ["websocket"] });
    const [err] = await once(socket, "connect_error");
    assert.equal(err.message, "unauthorized");
    assert.deepEqual(err.data, { code: "BAD_TOKEN" });
    assert.equal(socket.connected, false);
  });

  it("lets the right token in and keeps per-socket state", TEST, async () => {
    const socket = await connected(client("/private", { auth: { token: "secret" } }));
    assert.equal(await socket.timeout(5000).emitWithAck("whoami"), "user-1");
  });

  it("refuses an unknown namespace", TEST, async () => {
    const socket = client("/random");
    const [err] = await once(socket, "connect_error");
    assert.equal(err.message, "Invalid namespace");
  });

  it("socket.disconnect() on the server reaches the client", TEST, async () => {
    const socket = await connected(client("/"));
    const disconnected = once(socket, "disconnect");
    socket.emit("disconnect-me");
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect");
  });

  it("a panicking handler does not hurt the connection", TEST, async () => {
    const socket = await connected(client("/", { transports: ["websocket"] }));
    socket.emit("panic");
    socket.emit("message", "still alive");
    assert.deepEqual(await once(socket, "message-back"), ["still alive"]);
  });
});

describe("restart", () => {
  it("reconnects after the server restarts", TEST, async () => {
    const own = await startServer();
    try {
      const socket = io(own.url, {
        forceNew: true,
        transports: ["websocket"],
        reconnectionDelay: 100,
        reconnectionDelayMax: 200,
      });
      clients.push(socket);
      await connected(socket);
      const firstId = socket.id;
      const lost = once(socket, "disconnect");
      await own.stop();
      const [reason] = await lost;
      assert.equal(reason, "transport close");
      const back = once(socket.io, "reconnect");
      const restarted = await startServer(own.port);
      own.stop = restarted.stop;
      await back;
      await connected(socket);
      assert.notEqual(socket.id, firstId);
      socket.emit("message", "back");
      assert.deepEqual(await once(socket, "message-back"), ["back"]);
      socket.disconnect();
    } finally {
      await own.stop();
    }
  });
});
