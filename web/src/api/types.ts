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
  /** An instance admin (`[moderation] admins`): the /admin page. */
  isAdmin?: boolean;
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
  /** Locked rooms take no new seat without the room key (docs/MODERATION.md). */
  isLocked?: boolean;
  secondLanguage?: string | null;
  micRequired?: boolean;
  /** Nobody may unmute: a text-only room. */
  noMic?: boolean;
  /** Seconds between two messages of one person (0: off); hosts and co-hosts are exempt. */
  slowModeSecs?: number;
}

export type Role = 'HOST' | 'COHOST' | 'PARTICIPANT';

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
  /** Muted by a host or co-host: the person cannot unmute until it is lifted. */
  micLocked?: boolean;
  /** Camera stopped by a host or co-host, likewise. */
  cameraLocked?: boolean;
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
  secondLanguage?: string | null;
  micRequired?: boolean;
  noMic?: boolean;
}

/** `PATCH /api/rooms/:id` and `room:update`: the live settings, each optional. */
export interface RoomSettings {
  title?: string;
  topic?: string | null;
  language?: string;
  secondLanguage?: string | null;
  level?: Level;
  maxParticipants?: number;
  noMic?: boolean;
  micRequired?: boolean;
  slowModeSecs?: number;
}

export type ReportReason = 'spam' | 'harassment' | 'hate' | 'sexual' | 'underage' | 'other';
export const REPORT_REASONS: ReportReason[] = ['spam', 'harassment', 'hate', 'sexual', 'underage', 'other'];

/** One chat line kept with a report. */
export interface EvidenceLine {
  id: string;
  userId: string;
  displayName: string;
  message: string;
  createdAt: string;
}

/** A report; `reporter`, `reported` and `roomTitle` are null once purged (the ids stay). */
export interface Report {
  id: string;
  roomId: string;
  roomTitle: string | null;
  reporterId: string;
  reporter: UserPublic | null;
  reportedId: string;
  reported: UserPublic | null;
  reason: ReportReason;
  message: string | null;
  /** The room's last chat lines when the report was made, oldest first. */
  evidence: EvidenceLine[];
  createdAt: string;
  resolvedAt: string | null;
  resolvedBy: string | null;
}

export interface Block {
  user: UserPublic;
  createdAt: string;
}

export interface Ban {
  id: string;
  userId: string;
  /** Null once the account is purged. */
  user: UserPublic | null;
  /** The guest's network is banned too. */
  ipBanned: boolean;
  reason: string | null;
  bannedBy: string | null;
  createdAt: string;
  /** Null: for good. */
  until: string | null;
}

/** `GET /api/admin/rooms`: a live room with its people and open report count. */
export interface AdminRoom {
  room: RoomDetail;
  openReports: number;
}

/** A line of the audit log; `actorId` null: the command line. */
export interface AuditEntry {
  id: string;
  actorId: string | null;
  actor: UserPublic | null;
  action: string;
  targetUserId: string | null;
  target: UserPublic | null;
  roomId: string | null;
  details: Record<string, unknown> | null;
  createdAt: string;
}

/** Lobby filters: the query of GET /api/rooms, also applied to live updates. */
export interface LobbyFilters {
  language: string;
  topic: string;
  q: string;
  hasSeat: boolean;
  /** '' for any level. */
  level: Level | '';
  /** '' any, 'true' only rooms that need a microphone, 'false' only rooms that do not. */
  micRequired: '' | 'true' | 'false';
  sort: 'newest' | 'popular';
}

/** `POST /api/doctor/probe`: the SFU's answer, or why this server has no such path. */
export type ProbeAnswer =
  | { available: true; sdp: string; lifetimeMs: number }
  | { available: false; reason: 'meshMode' | 'iceTcpOff' };
