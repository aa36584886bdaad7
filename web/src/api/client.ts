// REST calls (docs/openapi.json). Every failure becomes an ApiError with the server's
// stable code, or NETWORK_ERROR when the server could not be reached.
import type {
  AdminRoom,
  AuditEntry,
  Ban,
  Block,
  ChatMessage,
  Participant,
  Report,
  ReportReason,
  RoomSettings,
  ErrorBody,
  JoinResult,
  LeaveResult,
  LobbyFilters,
  MessagePage,
  ProbeAnswer,
  Meta,
  NewRoom,
  RoomDetail,
  RoomPage,
  Session,
  UserPrivate,
} from './types';
import type { IceServerConfig } from '../realtime/events';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details?: Record<string, unknown>;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = 'ApiError';
    this.code = body.code;
    this.status = status;
    this.details = body.details;
  }
}

/** Codes that mean the stored token is no good any more: sign out (BANNED: the account is
 * banned, docs/MODERATION.md). */
export const SESSION_CODES = new Set(['INVALID_TOKEN', 'TOKEN_EXPIRED', 'UNAUTHENTICATED', 'BANNED']);

let tokenSource: () => string | null = () => null;
let onSessionInvalid: (code: string) => void = () => {};

/** Wires the client to the session: where the token comes from, who hears it went bad. */
export function configureApi(options: {
  token: () => string | null;
  onSessionInvalid: (code: string) => void;
}): void {
  tokenSource = options.token;
  onSessionInvalid = options.onSessionInvalid;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = tokenSource();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: 'NETWORK_ERROR', message: 'The server could not be reached' });
  }
  let parsed: unknown = null;
  const text = await response.text();
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const error = (parsed as { error?: ErrorBody } | null)?.error ?? {
      code: response.status >= 500 ? 'SERVICE_UNAVAILABLE' : 'UNKNOWN',
      message: `HTTP ${response.status}`,
    };
    if (token && SESSION_CODES.has(error.code)) onSessionInvalid(error.code);
    // SLOW_MODE over REST says the wait in Retry-After; the ack says it in details.
    const retryAfter = Number(response.headers.get('Retry-After'));
    if (error.code === 'SLOW_MODE' && error.details?.retryAfterSecs === undefined && retryAfter > 0) {
      error.details = { ...error.details, retryAfterSecs: retryAfter };
    }
    throw new ApiError(response.status, error);
  }
  return parsed as T;
}

const id = encodeURIComponent;

export function lobbyQuery(filters: LobbyFilters, cursor?: string | null, limit = 50): string {
  const params = new URLSearchParams({ status: 'LIVE', limit: String(limit) });
  if (filters.language) params.set('language', filters.language);
  if (filters.topic.trim()) params.set('topic', filters.topic.trim());
  if (filters.q.trim()) params.set('q', filters.q.trim().slice(0, 100));
  if (filters.hasSeat) params.set('hasSeat', 'true');
  if (filters.level) params.set('level', filters.level);
  if (filters.micRequired) params.set('micRequired', filters.micRequired);
  if (filters.sort !== 'newest') params.set('sort', filters.sort);
  if (cursor) params.set('cursor', cursor);
  return params.toString();
}

export const api = {
  meta: () => request<Meta>('GET', '/api/meta'),
  iceServers: () => request<{ iceServers: IceServerConfig[]; uplinkKbps?: number }>('GET', '/api/ice-servers'),
  guest: (displayName: string) => request<Session>('POST', '/api/auth/guest', { displayName }),
  login: (login: string, password: string) =>
    request<Session>('POST', '/api/auth/login', { login, password }),
  register: (body: { username: string; email: string; password: string; displayName?: string }) =>
    request<Session>('POST', '/api/auth/register', body),
  me: () => request<UserPrivate>('GET', '/api/auth/me'),
  rooms: (filters: LobbyFilters, cursor?: string | null) =>
    request<RoomPage>('GET', `/api/rooms?${lobbyQuery(filters, cursor)}`),
  room: (roomId: string) => request<RoomDetail>('GET', `/api/rooms/${id(roomId)}`),
  createRoom: (room: NewRoom) => request<RoomDetail>('POST', '/api/rooms', room),
  join: (roomId: string, roomKey?: string | null) =>
    request<JoinResult>('POST', `/api/rooms/${id(roomId)}/join`, roomKey ? { roomKey } : undefined),
  leave: (roomId: string) => request<LeaveResult>('POST', `/api/rooms/${id(roomId)}/leave`),
  kick: (roomId: string, userId: string) =>
    request<{ kickedUserId: string }>('POST', `/api/rooms/${id(roomId)}/kick/${id(userId)}`),
  chat: (roomId: string, cursor?: string | null, limit = 30) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (cursor) params.set('cursor', cursor);
    return request<MessagePage>('GET', `/api/rooms/${id(roomId)}/chat?${params}`);
  },
  probe: (transport: 'udp' | 'tcp' | 'relay', sdp: string) =>
    request<ProbeAnswer>('POST', '/api/doctor/probe', { transport, sdp }),
  sendChat: (roomId: string, message: string) =>
    request<ChatMessage>('POST', `/api/rooms/${id(roomId)}/chat`, { message }),

  // Moderation (docs/MODERATION.md): the REST side, used while the socket is down.
  deleteChat: (roomId: string, messageId: string) =>
    request<object>('DELETE', `/api/rooms/${id(roomId)}/chat/${id(messageId)}`),
  lock: (roomId: string) => request<{ roomKey: string }>('POST', `/api/rooms/${id(roomId)}/lock`),
  unlock: (roomId: string) => request<object>('DELETE', `/api/rooms/${id(roomId)}/lock`),
  roomKey: (roomId: string) => request<{ roomKey: string | null }>('GET', `/api/rooms/${id(roomId)}/key`),
  updateRoom: (roomId: string, settings: RoomSettings) =>
    request<{ room: RoomDetail }>('PATCH', `/api/rooms/${id(roomId)}`, settings),
  report: (roomId: string, body: { userId: string; reason: ReportReason; message?: string }) =>
    request<{ report: Report }>('POST', `/api/rooms/${id(roomId)}/reports`, body),
  setCohost: (roomId: string, userId: string, cohost: boolean) =>
    cohost
      ? request<{ participant: Participant }>('POST', `/api/rooms/${id(roomId)}/cohosts`, { userId })
      : request<{ participant: Participant }>('DELETE', `/api/rooms/${id(roomId)}/cohosts/${id(userId)}`),
  transferHost: (roomId: string, userId: string) =>
    request<{ room: RoomDetail }>('POST', `/api/rooms/${id(roomId)}/host`, { userId }),
  hardMute: (roomId: string, userId: string, body: { mic?: boolean; camera?: boolean }) =>
    request<{ participant: Participant }>('POST', `/api/rooms/${id(roomId)}/participants/${id(userId)}/mute`, body),
  muteAll: (roomId: string) => request<{ muted: number }>('POST', `/api/rooms/${id(roomId)}/mute-all`),
  blocks: () => request<{ blocks: Block[] }>('GET', '/api/me/blocks'),
  block: (userId: string) => request<object>('PUT', `/api/me/blocks/${id(userId)}`),
  unblock: (userId: string) => request<object>('DELETE', `/api/me/blocks/${id(userId)}`),

  admin: {
    rooms: () => request<{ rooms: AdminRoom[] }>('GET', '/api/admin/rooms'),
    endRoom: (roomId: string) => request<object>('DELETE', `/api/admin/rooms/${id(roomId)}`),
    reports: () => request<{ reports: Report[] }>('GET', '/api/admin/reports'),
    resolve: (reportId: string) => request<object>('POST', `/api/admin/reports/${id(reportId)}/resolve`),
    bans: () => request<{ bans: Ban[] }>('GET', '/api/admin/bans'),
    ban: (body: { userId: string; reason?: string; durationSecs?: number }) =>
      request<object>('POST', '/api/admin/bans', body),
    unban: (userId: string) => request<object>('DELETE', `/api/admin/bans/${id(userId)}`),
    audit: () => request<{ entries: AuditEntry[] }>('GET', '/api/admin/audit'),
  },
};
