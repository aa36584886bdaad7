// One Socket.IO connection per page: anonymous in the lobby, with the token once signed in.
// It reconnects by itself (socket.io-client's backoff), reports its state as a signal for
// the banner, lets stores subscribe to server events once for every socket it creates, and
// turns acks into promises.
import { signal } from '@preact/signals';
import { io, type Socket } from 'socket.io-client';

import { ApiError } from '../api/client';
import {
  CONNECT_ERROR_SESSION_CODES,
  ClientEvent,
  ServerEvent,
  type Ack,
  type ClientToServer,
  type ServerToClient,
} from './events';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting';

/** `connecting` until the first connect; `reconnecting` after losing it. */
export const connection = signal<ConnectionState>('connecting');

/** The Engine.IO transport in use: `websocket` once upgraded, `polling` before (or when a
 * proxy blocks WebSocket), null while not connected. The /doctor page reads it. */
export const realtimeTransport = signal<string | null>(null);

type AppSocket = Socket<ServerToClient, ClientToServer>;

const ACK_TIMEOUT_MS = 8000;
/** `checkConnection`: a socket that does not answer `conn:ping` this fast is taken as dead. */
const PROBE_TIMEOUT_MS = 3000;
/** Retry delay after the server refused the CONNECT for another reason than the token. */
const REFUSED_RETRY_MS = 5000;

let socket: AppSocket | null = null;
const handlers = new Map<string, Set<(payload: never) => void>>();
const connectHooks = new Set<() => void>();
let sessionInvalid: (code: string) => void = () => {};
let retryTimer: ReturnType<typeof setTimeout> | undefined;

/** Subscribes to a server event on this and every later socket; returns the unsubscribe. */
export function onServer<E extends keyof ServerToClient>(event: E, handler: ServerToClient[E]): () => void {
  let set = handlers.get(event);
  if (!set) handlers.set(event, (set = new Set()));
  const h = handler as (payload: never) => void;
  set.add(h);
  return () => set.delete(h);
}

/** Runs on every (re)connect: re-join the room, catch up on missed changes. */
export function onConnected(hook: () => void): () => void {
  connectHooks.add(hook);
  return () => connectHooks.delete(hook);
}

export function isConnected(): boolean {
  return socket?.connected ?? false;
}

/** (Re)connects with this token (or anonymously), replacing any previous socket. */
export function startRealtime(token: string | null, onSessionInvalid: (code: string) => void): void {
  stopRealtime();
  sessionInvalid = onSessionInvalid;
  connection.value = 'connecting';
  const s: AppSocket = io(window.location.origin, {
    path: '/socket.io/',
    auth: token ? { token } : {},
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    // Once a websocket worked, reconnect with one at once: a new TCP connection. The polling
    // handshake would go out on the browser's pooled HTTP connections, which die with the
    // network like the socket did, and wait out the 20 s connect timeout.
    rememberUpgrade: true,
  });
  socket = s;
  for (const event of Object.values(ServerEvent)) {
    // Dispatch through the registry so subscriptions survive socket replacement.
    (s as unknown as Socket).on(event, (payload: unknown) => {
      handlers.get(event)?.forEach((h) => h(payload as never));
    });
  }
  s.io.on('open', () => {
    const engine = s.io.engine;
    realtimeTransport.value = engine.transport.name;
    engine.on('upgrade', (transport: { name: string }) => {
      if (socket === s) realtimeTransport.value = transport.name;
    });
    engine.on('close', () => {
      if (socket === s) realtimeTransport.value = null;
    });
  });
  s.on('connect', () => {
    connection.value = 'connected';
    connectHooks.forEach((hook) => hook());
  });
  s.on('disconnect', (reason) => {
    if (socket !== s) return;
    connection.value = 'reconnecting';
    // The server closed this socket on purpose: socket.io-client does not retry by itself.
    if (reason === 'io server disconnect') s.connect();
  });
  s.on('connect_error', (err) => {
    if (socket !== s) return;
    if (CONNECT_ERROR_SESSION_CODES.includes(err.message)) {
      sessionInvalid(err.message);
      return;
    }
    if (!s.active) {
      // Refused by the server (not a network error): no automatic retry, so schedule one.
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => socket === s && s.connect(), REFUSED_RETRY_MS);
    }
  });
}

export function stopRealtime(): void {
  clearTimeout(retryTimer);
  if (socket) {
    const old = socket;
    socket = null;
    old.removeAllListeners();
    old.disconnect();
  }
}

/** Sends an event and resolves with the `{ok:true}` answer, or rejects with an ApiError
 * carrying the server's code (REALTIME_OFFLINE when not connected, TIMEOUT without ack). */
export function request<E extends keyof ClientToServer>(
  event: E,
  payload: Parameters<ClientToServer[E]>[0],
  timeoutMs = ACK_TIMEOUT_MS,
): Promise<Extract<Parameters<Parameters<ClientToServer[E]>[1]>[0], { ok: true }>> {
  return new Promise((resolve, reject) => {
    const s = socket;
    if (!s || !s.connected) {
      reject(new ApiError(0, { code: 'REALTIME_OFFLINE', message: 'Not connected' }));
      return;
    }
    // socket.io-client's typed emit cannot express "ack with a timeout" over a generic E.
    const timed = s.timeout(timeoutMs) as unknown as {
      emit(ev: string, p: unknown, cb: (err: Error | null, answer: Ack) => void): void;
    };
    timed.emit(event, payload, (err, answer) => {
      if (err) {
        reject(new ApiError(0, { code: 'TIMEOUT', message: 'No answer from the server' }));
      } else if (answer && answer.ok) {
        resolve(answer as never);
      } else {
        const error = answer && !answer.ok ? answer.error : { code: 'UNKNOWN', message: 'Bad answer' };
        reject(new ApiError(0, error));
      }
    });
  });
}

let probe: Promise<void> | null = null;

/** The network changed, or the media connection broke: does the socket still reach the
 * server? One that does not answer `conn:ping` within PROBE_TIMEOUT_MS is dropped and
 * connects again now, rather than after the Engine.IO ping timeout (45 s by default): a
 * socket whose network went away says nothing, and signaling is what repairs the media.
 * Resolves once known (one check at a time; callers meanwhile share it). */
export function checkConnection(): Promise<void> {
  const s = socket;
  if (!s || !s.connected) return Promise.resolve();
  probe ??= request(ClientEvent.connPing, {}, PROBE_TIMEOUT_MS)
    .then(
      () => {},
      (err: unknown) => {
        if ((err as ApiError).code === 'TIMEOUT' && socket === s && s.connected) {
          console.info('[realtime] the socket does not answer; connecting again');
          // engine.io-client closes at once ("forced close") and the Manager reconnects.
          s.io.engine.close();
        }
      },
    )
    .finally(() => {
      probe = null;
    });
  return probe;
}
