// The Socket.IO contract with the server, in ONE place: event names and payloads.
// A rename on the server is one edit here.
import type { ChatMessage, Participant, Report, ReportReason, Room, RoomDetail, RoomSettings, UserPublic } from '../api/types';

/** Client → server; every one answers through an ack. */
export const ClientEvent = {
  roomJoin: 'room:join',
  roomLeave: 'room:leave',
  chatMessage: 'chat:message',
  toggleMic: 'media:toggle-mic',
  toggleVideo: 'media:toggle-video',
  handRaise: 'hand:raise',
  handLower: 'hand:lower',
  roomKick: 'room:kick',
  // Moderation (docs/MODERATION.md).
  roomCohost: 'room:cohost',
  roomTransferHost: 'room:transfer-host',
  roomHardMute: 'room:hard-mute',
  roomMuteAll: 'room:mute-all',
  roomLock: 'room:lock',
  roomUpdate: 'room:update',
  roomReport: 'room:report',
  chatDelete: 'chat:delete',
  sfuJoin: 'sfu:join',
  sfuLeave: 'sfu:leave',
  /** Takes over the session an earlier socket of this page held (its network went away). */
  sfuResume: 'sfu:resume',
  /** Answered at once: does this socket still reach the server? */
  connPing: 'conn:ping',
  /** What this participant wants to receive: `{video: false}` is audio-only. */
  sfuPrefs: 'sfu:prefs',
  sfuOffer: 'sfu:offer',
  sfuAnswer: 'sfu:answer',
  sfuCandidate: 'sfu:candidate',
  meshOffer: 'webrtc:offer',
  meshAnswer: 'webrtc:answer',
  meshCandidate: 'webrtc:ice-candidate',
} as const;

/** Server → client. */
export const ServerEvent = {
  listUpdate: 'room:list-update',
  userJoined: 'room:user-joined',
  userLeft: 'room:user-left',
  userKicked: 'room:user-kicked',
  roomEnded: 'room:ended',
  chatMessage: 'chat:message',
  userMuted: 'media:user-muted',
  userVideo: 'media:user-video',
  handRaised: 'hand:raised',
  handLowered: 'hand:lowered',
  participantUpdated: 'room:participant-updated',
  chatDeleted: 'chat:deleted',
  sessionBanned: 'session:banned',
  sfuOffer: 'sfu:offer',
  sfuAnswer: 'sfu:answer',
  sfuCandidate: 'sfu:candidate',
  sfuConnected: 'sfu:connected',
  sfuClosed: 'sfu:closed',
  sfuVideo: 'sfu:video',
  meshOffer: 'webrtc:offer',
  meshAnswer: 'webrtc:answer',
  meshCandidate: 'webrtc:ice-candidate',
} as const;

/** Messages of `connect_error` that mean the token is no good: sign out. */
export const CONNECT_ERROR_SESSION_CODES = ['INVALID_TOKEN', 'TOKEN_EXPIRED', 'BANNED'];

export type AckError = { ok: false; error: { code: string; message: string } };
export type Ack<T extends object = object> = ({ ok: true } & T) | AckError;

export interface ListUpdate {
  action: 'created' | 'updated' | 'ended';
  room: Room;
}
export interface UserJoined {
  roomId: string;
  user: UserPublic;
  participant: Participant;
}
export interface UserLeft {
  roomId: string;
  userId: string;
  newHostId: string | null;
}
export interface UserKicked {
  roomId: string;
  userId: string;
}
export interface RoomEnded {
  roomId: string;
  reason: 'last_left' | 'host_ended';
}
export interface ChatBroadcast {
  roomId: string;
  message: ChatMessage;
  sender: UserPublic;
}
export interface UserMuted {
  roomId: string;
  userId: string;
  isMuted: boolean;
}
export interface UserVideo {
  roomId: string;
  userId: string;
  isVideoOff: boolean;
}
export interface HandChange {
  roomId: string;
  userId: string;
}
/** A role or lock changed: the whole view, replacing the one we have. */
export interface ParticipantUpdated {
  roomId: string;
  participant: Participant;
}
export interface ChatDeleted {
  roomId: string;
  messageId: string;
}
/** This account was banned: the server disconnects the socket right after. */
export interface SessionBanned {
  reason: string | null;
  /** ISO time, null for good. */
  until: string | null;
}

// Media through the server's SFU (docs/SFU.md): one peer connection per participant.

/** One m-line the server sends us: whose track it is (`userId` = the publisher). */
export interface SfuTrackInfo {
  mid: string;
  userId: string;
  kind: 'audio' | 'video';
  trackId: string;
}
/** The server's offer (renegotiation) or its answer to our offer. */
export interface SfuDescription {
  roomId: string;
  sdp: string;
  /** Everything this connection receives, one entry per live m-line. */
  tracks: SfuTrackInfo[];
}
export interface SfuCandidate {
  roomId?: string;
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}
export type SfuCloseReason =
  | 'left'
  | 'kicked'
  | 'roomEnded'
  | 'connectionFailed'
  | 'answerTimeout'
  | 'connectTimeout'
  | 'shutdown'
  | 'replaced';
export interface SfuClosed {
  roomId: string;
  reason: SfuCloseReason;
}
// Mesh mode: the server relays `webrtc:*` between two browsers of one room (media/mesh.ts).

/** What one browser sends another. `from`/`to` name peer connections (a fresh id per
 * connection), so a message meant for a connection that was replaced is dropped. */
export interface MeshSignal {
  from: string;
  /** The receiving connection, once known (absent on the first offer of a new connection). */
  to?: string;
  sdp?: string;
  candidate?: RTCIceCandidateInit;
}
/** As it arrives: the server adds who sent it, and the room. */
export interface MeshSignalIn extends MeshSignal {
  roomId: string;
  senderUserId: string;
  targetUserId: string;
}
export interface IceServerConfig {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface ServerToClient {
  [ServerEvent.listUpdate]: (p: ListUpdate) => void;
  [ServerEvent.userJoined]: (p: UserJoined) => void;
  [ServerEvent.userLeft]: (p: UserLeft) => void;
  [ServerEvent.userKicked]: (p: UserKicked) => void;
  [ServerEvent.roomEnded]: (p: RoomEnded) => void;
  [ServerEvent.chatMessage]: (p: ChatBroadcast) => void;
  [ServerEvent.userMuted]: (p: UserMuted) => void;
  [ServerEvent.userVideo]: (p: UserVideo) => void;
  [ServerEvent.handRaised]: (p: HandChange) => void;
  [ServerEvent.handLowered]: (p: HandChange) => void;
  [ServerEvent.participantUpdated]: (p: ParticipantUpdated) => void;
  [ServerEvent.chatDeleted]: (p: ChatDeleted) => void;
  [ServerEvent.sessionBanned]: (p: SessionBanned) => void;
  [ServerEvent.sfuOffer]: (p: SfuDescription) => void;
  [ServerEvent.sfuAnswer]: (p: SfuDescription) => void;
  [ServerEvent.sfuCandidate]: (p: SfuCandidate) => void;
  [ServerEvent.sfuConnected]: (p: { roomId: string }) => void;
  [ServerEvent.sfuClosed]: (p: SfuClosed) => void;
  [ServerEvent.sfuVideo]: (p: { roomId: string; paused: boolean; reason: string }) => void;
  [ServerEvent.meshOffer]: (p: MeshSignalIn) => void;
  [ServerEvent.meshAnswer]: (p: MeshSignalIn) => void;
  [ServerEvent.meshCandidate]: (p: MeshSignalIn) => void;
}

type WithAck<P, R extends object = object> = (payload: P, ack: (answer: Ack<R>) => void) => void;

/** The ack of `sfu:join` and `sfu:resume`. */
export interface SfuSessionAck {
  iceServers: IceServerConfig[];
  uplinkKbps?: number;
  simulcast?: boolean;
  audioRed?: boolean;
  /** Names the session for `sfu:resume` (absent from older servers: no resume). */
  sessionId?: string;
}

export interface ClientToServer {
  [ClientEvent.roomJoin]: WithAck<{ roomId: string; roomKey?: string }, { room: RoomDetail; participant: Participant }>;
  [ClientEvent.roomLeave]: WithAck<{ roomId: string }, { roomEnded: boolean; newHostId: string | null }>;
  [ClientEvent.chatMessage]: WithAck<{ roomId: string; message: string }, { message: ChatMessage }>;
  [ClientEvent.toggleMic]: WithAck<{ roomId: string; isMuted: boolean }>;
  [ClientEvent.toggleVideo]: WithAck<{ roomId: string; isVideoOff: boolean }>;
  [ClientEvent.handRaise]: WithAck<{ roomId: string }>;
  [ClientEvent.handLower]: WithAck<{ roomId: string; userId?: string }>;
  [ClientEvent.roomKick]: WithAck<{ roomId: string; userId: string }>;
  [ClientEvent.roomCohost]: WithAck<{ roomId: string; userId: string; cohost: boolean }, { participant: Participant }>;
  [ClientEvent.roomTransferHost]: WithAck<{ roomId: string; userId: string }, { room: RoomDetail }>;
  [ClientEvent.roomHardMute]: WithAck<
    { roomId: string; userId: string; mic?: boolean; camera?: boolean },
    { participant: Participant }
  >;
  [ClientEvent.roomMuteAll]: WithAck<{ roomId: string }, { muted: number }>;
  [ClientEvent.roomLock]: WithAck<{ roomId: string; locked: boolean }, { roomKey?: string }>;
  [ClientEvent.roomUpdate]: WithAck<{ roomId: string } & RoomSettings, { room: RoomDetail }>;
  [ClientEvent.roomReport]: WithAck<
    { roomId: string; userId: string; reason: ReportReason; message?: string },
    { report: Report }
  >;
  [ClientEvent.chatDelete]: WithAck<{ roomId: string; messageId: string }>;
  [ClientEvent.sfuJoin]: WithAck<{ roomId: string; publish: boolean }, SfuSessionAck>;
  [ClientEvent.sfuLeave]: WithAck<{ roomId: string }>;
  [ClientEvent.sfuResume]: WithAck<{ roomId: string; sessionId: string }, SfuSessionAck>;
  [ClientEvent.connPing]: WithAck<Record<string, never>>;
  [ClientEvent.sfuPrefs]: WithAck<{ roomId: string; video?: boolean; tiles?: Record<string, number> }>;
  [ClientEvent.sfuOffer]: WithAck<{ sdp: string }>;
  [ClientEvent.sfuAnswer]: WithAck<{ sdp: string }>;
  [ClientEvent.sfuCandidate]: WithAck<Omit<SfuCandidate, 'roomId'>>;
  [ClientEvent.meshOffer]: WithAck<MeshSignal & { targetUserId: string }>;
  [ClientEvent.meshAnswer]: WithAck<MeshSignal & { targetUserId: string }>;
  [ClientEvent.meshCandidate]: WithAck<MeshSignal & { targetUserId: string }>;
}
