// The REST shapes of docs/openapi.json (components.schemas), as the app reads them.

export type Level =
  | 'any'
  | 'beginner'
  | 'upper_beginner'
  | 'intermediate'
  | 'upper_intermediate'
  | 'advanced'
  | 'upper_advanced';

export interface UserPublic {
  id: string;
  username: string | null;
  displayName: string;
  isGuest: boolean;
}

export interface UserPrivate extends UserPublic {
  email: string | null;
  createdAt: string;
}

export interface Session {
  token: string;
  user: UserPrivate;
}

export type RoomStatus = 'LIVE' | 'ENDED';

/** A lobby card: GET /api/rooms and `room:list-update`. */
export interface Room {
  id: string;
  title: string;
  topic: string | null;
  language: string;
  level: Level;
  maxParticipants: number;
  participantCount: number;
  status: RoomStatus;
  host: UserPublic;
  members: UserPublic[];
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
}

export type Role = 'HOST' | 'PARTICIPANT';

export interface Participant {
  userId: string;
  displayName: string;
  username: string | null;
  isGuest: boolean;
  role: Role;
  isMuted: boolean;
  isVideoOff: boolean;
  handRaised: boolean;
  joinedAt: string;
}

export interface RoomDetail extends Room {
  participants: Participant[];
}

export interface RoomPage {
  rooms: Room[];
  nextCursor: string | null;
}

export interface ChatMessage {
  id: string;
  roomId: string;
  message: string;
  createdAt: string;
  sender: UserPublic;
}

export interface MessagePage {
  messages: ChatMessage[];
  nextCursor: string | null;
}

export interface JoinResult {
  room: RoomDetail;
  participant: Participant;
}

export interface LeaveResult {
  roomEnded: boolean;
  newHostId: string | null;
}

export interface Meta {
  version: string;
  languages: string[];
  defaultLanguage: string;
  levels: Level[];
  minParticipants: number;
  maxParticipants: number;
  defaultMaxParticipants: number;
  /** How media flows: through the server's SFU (default) or browser to browser (opt-in). */
  mediaMode?: 'sfu' | 'mesh';
}

export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export interface NewRoom {
  title: string;
  topic: string | null;
  language: string;
  level: Level;
  maxParticipants: number;
}

/** Lobby filters: the query of GET /api/rooms, also applied to live updates. */
export interface LobbyFilters {
  language: string;
  topic: string;
  q: string;
  hasSeat: boolean;
}

/** `POST /api/doctor/probe`: the SFU's answer, or why this server has no such path. */
export type ProbeAnswer =
  | { available: true; sdp: string; lifetimeMs: number }
  | { available: false; reason: 'meshMode' | 'iceTcpOff' };
