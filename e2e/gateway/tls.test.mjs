// HTTPS served by the binary itself, as a self-hoster on a LAN turns it on
// (server.tls.mode = "self-signed"): the official client over https and wss, with the
// certificate the server made trusted the way a user would trust it (its CA, not "ignore
// errors").
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { after, test } from "node:test";
import { io } from "socket.io-client";

import { startServer } from "./harness.mjs";

const servers = [];
const sockets = [];
after(async () => {
  for (const socket of sockets) socket.close();
  for (const s of servers) await s.stop();
});

/** An https request trusting `ca` only: {status, headers, body}. */
function request(url, { ca, method = "GET", body, token } = {}) {
  const headers = {};
  if (body) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : null }));
    });
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

test("self-signed: the app over https and the official client over wss", { timeout: 60_000 }, async () => {
  const s = await startServer({ env: { TALKCONNECT__SERVER__TLS__MODE: "self-signed" } });
  servers.push(s);
  assert.match(s.url, /^https:/);
  const certFile = path.join(s.dataDir, "tls", "self-signed.crt");
  const ca = readFileSync(certFile);
  assert.equal(statSync(path.join(s.dataDir, "tls", "self-signed.key")).mode & 0o077, 0, "the key is its owner's only");

  // Untrusted, the certificate is refused (nothing here ignores certificate errors).
  await assert.rejects(request(`${s.url}/healthz`), /self[- ]signed/i);
  const health = await request(`${s.url}/healthz`, { ca });
  assert.equal(health.status, 200);
  assert.equal(health.headers["strict-transport-security"], undefined, "no HSTS with a self-signed certificate");
  // Plain HTTP on the https port gets no page.
  await assert.rejects(fetch(`http://127.0.0.1:${s.port}/healthz`).then((r) => r.json()));

  const guest = await request(`${s.url}/api/auth/guest`, { ca, method: "POST", body: { displayName: "Lan" } });
  assert.equal(guest.status, 201);
  const token = guest.body.token;
  const created = await request(`${s.url}/api/rooms`, { ca, method: "POST", token, body: { title: "Phòng LAN" } });
  assert.equal(created.status, 201);

  const socket = io(s.url, { auth: { token }, ca });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  if (socket.io.engine.transport.name !== "websocket") await new Promise((r) => socket.io.engine.once("upgrade", r));
  assert.equal(socket.io.engine.transport.name, "websocket", "upgraded to wss");
  const joined = await socket.timeout(10_000).emitWithAck("room:join", { roomId: created.body.id });
  assert.equal(joined.ok, true, JSON.stringify(joined));
  const said = await socket.timeout(10_000).emitWithAck("chat:message", { message: "qua wss" });
  assert.equal(said.ok, true, JSON.stringify(said));
});
