// Starts the real talkconnect binary for end-to-end tests: a fresh SQLite database in a temp
// folder, a free port, rate limits off; plus small helpers for REST and Socket.IO clients.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, "target");

let built = null;
/** Path of the talkconnect binary, built once per test process. */
export function binary() {
  if (process.env.TALKCONNECT_BIN) return process.env.TALKCONNECT_BIN;
  if (!built) {
    const build = spawnSync("cargo", ["build", "--quiet", "--bin", "talkconnect"], { cwd: repo, stdio: "inherit" });
    if (build.status !== 0) throw new Error("cargo build --bin talkconnect failed");
    built = path.join(targetDir, "debug", "talkconnect");
  }
  return built;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a server. `env` adds TALKCONNECT__ settings. `dataDir` and `port` may be given to
 * restart a server on the same database and address.
 */
export async function startServer({ env = {}, dataDir, port } = {}) {
  dataDir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), "tc-e2e-"));
  port = port ?? (await freePort());
  const child = spawn(binary(), [], {
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG || "warn,talkconnect=info",
      NO_COLOR: "1",
      TALKCONNECT__SERVER__HOST: "127.0.0.1",
      TALKCONNECT__SERVER__PORT: String(port),
      TALKCONNECT__SERVER__DATA_DIR: dataDir,
      TALKCONNECT__DATABASE__URL: `sqlite://${path.join(dataDir, "talkconnect.db")}`,
      TALKCONNECT__RATE_LIMIT__ENABLED: "false",
      // Media on loopback, in a UDP port block of its own so servers side by side never collide.
      TALKCONNECT__SFU__BIND_IP: "127.0.0.1",
      TALKCONNECT__SFU__ALLOW_LOOPBACK: "true",
      TALKCONNECT__SFU__UDP_PORT_MIN: String(41000 + (port % 400) * 20),
      TALKCONNECT__SFU__UDP_PORT_MAX: String(41000 + (port % 400) * 20 + 19),
      ...env,
    },
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error("the server did not start within 60 s")), 60_000);
    child.stdout.on("data", (chunk) => {
      buffer += chunk.toString();
      if (buffer.includes("listening on http://")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}`));
    });
  });
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    dataDir,
    /** Stops the process; `keepData` leaves the database for a restart. */
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Calls the REST API; answers {status, body}. */
export async function api(server, method, route, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(server.url + route, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** A guest account: {id, token, name}. */
export async function guest(server, name) {
  const { status, body } = await api(server, "POST", "/api/auth/guest", { body: { displayName: name } });
  if (status !== 201) throw new Error(`guest ${name}: ${status} ${JSON.stringify(body)}`);
  return { id: body.user.id, token: body.token, name };
}

/** A room created over REST by `host`; answers its id. */
export async function room(server, host, fields = {}) {
  const { status, body } = await api(server, "POST", "/api/rooms", {
    token: host.token,
    body: { title: "Room", ...fields },
  });
  if (status !== 201) throw new Error(`room: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

const open = new Set();

/** A connected Socket.IO client (the official one); rejects on connect_error. */
export function connect(server, user, options = {}) {
  const socket = io(server.url, {
    path: "/socket.io/",
    auth: user ? { token: user.token } : {},
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    ...options,
  });
  open.add(socket);
  return new Promise((resolve, reject) => {
    const refused = (err) => {
      socket.close();
      reject(err);
    };
    socket.once("connect_error", refused);
    socket.once("connect", () => {
      // Later connect errors are reconnection attempts: the client retries by itself.
      socket.off("connect_error", refused);
      resolve(socket);
    });
  });
}

export function closeAll() {
  for (const socket of open) socket.close();
  open.clear();
}

/** Emits with an ack and answers the ack's payload. */
export function call(socket, event, payload) {
  return socket.timeout(10_000).emitWithAck(event, payload);
}

/** Waits for the next `event` whose payload satisfies `match`. */
export function next(socket, event, match = () => true, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    function handler(payload) {
      if (!match(payload)) return;
      clearTimeout(timer);
      socket.off(event, handler);
      resolve(payload);
    }
    socket.on(event, handler);
  });
}

/** Collects every `event` received, for checking what did NOT arrive. */
export function record(socket, event) {
  const seen = [];
  socket.on(event, (payload) => seen.push(payload));
  return seen;
}

/** Lets in-flight packets arrive (used only before asserting that something did not). */
export function settle(ms = 500) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
