// deploy/nginx.conf in front of two replicas: websocket upgrades pass, long-polling stays on
// one replica (sticky), and users behind the proxy meet users on any replica.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { api, call, closeAll, cluster, connect, guest, next, nginxInstalled, room, servicesMissing, startNginx } from "./harness.mjs";

const missing = servicesMissing() ?? (nginxInstalled() ? null : "nginx is not installed (apt-get install nginx)");
if (missing && process.env.CI === "true") throw new Error(missing);

const cleanup = [];
afterEach(async () => {
  closeAll();
  while (cleanup.length) await cleanup.pop()();
});

describe("behind nginx", { skip: missing ?? false }, () => {
  test("polling and websocket clients through the proxy talk with users on both replicas", async () => {
    const c = await cluster("nginx");
    cleanup.push(() => c.close());
    const a = await c.replica({ TALKCONNECT__SERVER__TRUSTED_PROXIES: "127.0.0.1" });
    const b = await c.replica({ TALKCONNECT__SERVER__TRUSTED_PROXIES: "127.0.0.1" });
    const proxy = await startNginx([a, b]);
    cleanup.push(() => proxy.stop());

    const host = await guest(proxy, "Via proxy (polling)");
    const viaWs = await guest(proxy, "Via proxy (websocket)");
    const onA = await guest(a, "Direct on A");
    const onB = await guest(b, "Direct on B");
    const roomId = await room(proxy, host, { title: "Behind nginx" });

    const polling = await connect(proxy, host, { transports: ["polling"] });
    assert.equal(polling.io.engine.transport.name, "polling");
    const websocket = await connect(proxy, viaWs, { transports: ["websocket"] });
    assert.equal(websocket.io.engine.transport.name, "websocket");
    const socketA = await connect(a, onA);
    const socketB = await connect(b, onB);
    for (const s of [polling, websocket, socketA, socketB]) {
      const joined = await call(s, "room:join", { roomId });
      assert.equal(joined.ok, true, JSON.stringify(joined));
    }
    // Several polling round trips in a row: each must land on the replica holding the session.
    for (let i = 0; i < 5; i++) {
      const heardA = next(socketA, "chat:message", (m) => m.message.message === `poll ${i}`);
      const heardB = next(socketB, "chat:message", (m) => m.message.message === `poll ${i}`);
      const heardWs = next(websocket, "chat:message", (m) => m.message.message === `poll ${i}`);
      assert.equal((await call(polling, "chat:message", { message: `poll ${i}` })).ok, true);
      await Promise.all([heardA, heardB, heardWs]);
    }
    const back = next(polling, "chat:message", (m) => m.message.message === "from B");
    await call(socketB, "chat:message", { message: "from B" });
    await back;
    const detail = await api(proxy, "GET", `/api/rooms/${roomId}`);
    assert.equal(detail.body.participantCount, 4);
  });
});
