// A stand-in for the realtime server, used ONLY while the binary does not serve /socket.io/
// yet: a proxy in front of the real binary that passes every HTTP request through and
// answers Socket.IO itself, following the contract of docs/ARCHITECTURE.md and
// web/src/realtime/events.ts by calling the binary's REST API with the user's token.
// It lets the browser tests exercise the app's realtime code today; once the binary mounts
// its own Socket.IO server the tests run against that instead (see realtime.test.mjs).
import http from 'node:http';

import { Server } from 'socket.io';

export async function startContractStub(backendUrl, { port = 0 } = {}) {
  let backend = backendUrl;
  const httpServer = http.createServer((req, res) => proxy(req, res));
  const io = new Server(httpServer, { path: '/socket.io/', serveClient: false, cors: { origin: false } });

  async function rest(method, path, token, body) {
    const res = await fetch(`${backend}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json().catch(() => null);
    return { ok: res.ok, status: res.status, json };
  }

  const lobbyView = (detail) => {
    const { participants: _omit, ...room } = detail;
    return room;
  };

  async function broadcastRoom(roomId, action) {
    const detail = await rest('GET', `/api/rooms/${roomId}`);
    if (detail.ok) {
      io.emit('room:list-update', { action: action ?? (detail.json.status === 'ENDED' ? 'ended' : 'updated'), room: lobbyView(detail.json) });
    }
  }

  const users = new Map();
  async function userOf(token) {
    if (!users.has(token)) {
      const me = await rest('GET', '/api/auth/me', token);
      if (!me.ok) return null;
      users.set(token, { id: me.json.id, username: me.json.username, displayName: me.json.displayName, isGuest: me.json.isGuest });
    }
    return users.get(token);
  }

  const ROOM_ACTION = /^\/api\/rooms(?:\/([^/?]+)(?:\/(join|leave|chat|kick)(?:\/([^/?]+))?)?)?$/;

  /** A REST write, then the events the server publishes after it, whichever way it came
   * (the page's fetch through the proxy, or a socket event). */
  async function mutate(method, path, token, body) {
    const m = ROOM_ACTION.exec(path.split('?')[0]);
    const [, roomId, action, target] = m ?? [];
    const before = action === 'join' ? await rest('GET', `/api/rooms/${roomId}`) : null;
    const r = await rest(method, path, token, body);
    if (!r.ok || !m) return r;
    const user = token ? await userOf(token) : null;
    const room = `room:${roomId}`;
    if (method === 'POST' && !roomId) {
      io.emit('room:list-update', { action: 'created', room: lobbyView(r.json) });
    } else if (action === 'join') {
      const wasIn = before?.ok && before.json.participants.some((p) => p.userId === user.id);
      if (!wasIn) {
        io.to(room).emit('room:user-joined', { roomId, user, participant: r.json.participant });
        await broadcastRoom(roomId);
      }
    } else if (action === 'leave') {
      io.to(room).emit('room:user-left', { roomId, userId: user.id, newHostId: r.json.newHostId });
      io.in(`user:${user.id}`).socketsLeave(room);
      if (r.json.roomEnded) io.to(room).emit('room:ended', { roomId, reason: 'last_left' });
      await broadcastRoom(roomId);
    } else if (action === 'kick') {
      io.to(room).to(`user:${target}`).emit('room:user-kicked', { roomId, userId: target });
      io.in(`user:${target}`).socketsLeave(room);
      await broadcastRoom(roomId);
    } else if (action === 'chat' && method === 'POST') {
      io.to(room).emit('chat:message', { roomId, message: r.json, sender: r.json.sender });
    } else if (method === 'DELETE' && !action) {
      io.to(room).emit('room:ended', { roomId, reason: 'host_ended' });
      await broadcastRoom(roomId, 'ended');
    }
    return r;
  }

  function proxy(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if ((req.method === 'POST' || req.method === 'DELETE') && ROOM_ACTION.test(req.url.split('?')[0])) {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        let parsed;
        try {
          parsed = body.length ? JSON.parse(body.toString()) : undefined;
        } catch {
          parsed = undefined;
        }
        const r = await mutate(req.method, req.url, token, parsed).catch(() => null);
        if (!r) {
          res.writeHead(502);
          return res.end();
        }
        res.writeHead(r.status, { 'content-type': 'application/json' });
        return res.end(JSON.stringify(r.json));
      }
      const target = new URL(req.url, backend);
      const upstream = http.request(
        target,
        { method: req.method, headers: { ...req.headers, host: target.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  }

  io.use(async (socket, next) => {
    const token = socket.handshake.auth?.token;
    if (!token) return next();
    const me = await rest('GET', '/api/auth/me', token).catch(() => null);
    if (!me?.ok) return next(new Error(me?.json?.error?.code ?? 'INVALID_TOKEN'));
    socket.data.token = token;
    socket.data.user = { id: me.json.id, username: me.json.username, displayName: me.json.displayName, isGuest: me.json.isGuest };
    socket.join(`user:${me.json.id}`);
    next();
  });

  const fail = (ack, r) => ack?.({ ok: false, error: r.json?.error ?? { code: 'UNKNOWN', message: 'failed' } });
  const authed = (socket, ack) => {
    if (socket.data.token) return true;
    ack?.({ ok: false, error: { code: 'UNAUTHENTICATED', message: 'Sign in first' } });
    return false;
  };

  io.on('connection', (socket) => {
    const token = () => socket.data.token;
    const me = () => socket.data.user;

    socket.on('room:join', async ({ roomId }, ack) => {
      if (!authed(socket, ack)) return;
      // In the socket room first, so this socket hears what follows its own join.
      socket.join(`room:${roomId}`);
      const r = await mutate('POST', `/api/rooms/${roomId}/join`, token());
      if (!r.ok) {
        socket.leave(`room:${roomId}`);
        return fail(ack, r);
      }
      ack?.({ ok: true, room: r.json.room, participant: r.json.participant });
    });

    socket.on('room:leave', async ({ roomId }, ack) => {
      if (!authed(socket, ack)) return;
      const r = await mutate('POST', `/api/rooms/${roomId}/leave`, token());
      if (!r.ok) return fail(ack, r);
      ack?.({ ok: true, roomEnded: r.json.roomEnded, newHostId: r.json.newHostId });
    });

    socket.on('chat:message', async ({ roomId, message }, ack) => {
      if (!authed(socket, ack)) return;
      const r = await mutate('POST', `/api/rooms/${roomId}/chat`, token(), { message });
      if (!r.ok) return fail(ack, r);
      ack?.({ ok: true, message: r.json });
    });

    const relay = (event, out, build) =>
      socket.on(event, (payload, ack) => {
        if (!authed(socket, ack)) return;
        if (!socket.rooms.has(`room:${payload.roomId}`)) {
          return ack?.({ ok: false, error: { code: 'NOT_A_PARTICIPANT', message: 'Not in the room' } });
        }
        ack?.({ ok: true });
        io.to(`room:${payload.roomId}`).emit(out, build(payload));
      });
    relay('media:toggle-mic', 'media:user-muted', (p) => ({ roomId: p.roomId, userId: me().id, isMuted: p.isMuted }));
    relay('media:toggle-video', 'media:user-video', (p) => ({ roomId: p.roomId, userId: me().id, isVideoOff: p.isVideoOff }));
    relay('hand:raise', 'hand:raised', (p) => ({ roomId: p.roomId, userId: me().id }));
    relay('hand:lower', 'hand:lowered', (p) => ({ roomId: p.roomId, userId: p.userId ?? me().id }));

    socket.on('room:kick', async ({ roomId, userId }, ack) => {
      if (!authed(socket, ack)) return;
      const r = await mutate('POST', `/api/rooms/${roomId}/kick/${userId}`, token());
      if (!r.ok) return fail(ack, r);
      ack?.({ ok: true });
    });
  });

  await new Promise((resolve) => httpServer.listen(port, '127.0.0.1', resolve));
  const address = httpServer.address();
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    /** Points the proxy at a restarted backend. */
    setBackend(url) {
      backend = url;
    },
    async stop() {
      io.disconnectSockets(true);
      const closed = new Promise((resolve) => io.close(() => resolve()));
      // Keep-alive connections of the pages would hold the port open otherwise.
      httpServer.closeAllConnections();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    },
  };
}
