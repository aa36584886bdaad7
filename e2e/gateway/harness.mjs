// The gateway end-to-end tests' toolbox: startServer (the real binary on a fresh SQLite
// database, from ../support/server.mjs) and small helpers for REST and Socket.IO clients.
import { io } from "socket.io-client";

export { startServer } from "../support/server.mjs";

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
