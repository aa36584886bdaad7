// The room this page is in. On entry the server's own view is loaded (the seat taken with
// `room:join`, or over REST while the socket is down; then the chat history over REST);
// after every reconnect `room:join` brings a fresh snapshot, and socket events change it. While the socket is down the room is
// re-read over REST every few seconds, so the page never shows a stale room for long.
import { signal } from '@preact/signals';

import { ApiError, api } from '../api/client';
import type { ChatMessage, Participant, ReportReason, RoomDetail, RoomSettings } from '../api/types';
import { errorCode } from '../errors';
import type { MessageKey } from '../i18n';
import { navigate, roomKeyFromUrl } from '../router';
import { mark, resetMarks } from '../media/timeline';
import { ClientEvent, ServerEvent } from '../realtime/events';
import { isConnected, onConnected, onServer, request } from '../realtime/socket';
import { mergeMessages, removeMessage } from './chat';
import { showNotice } from './notice';
import { reduceRoom, type RoomChange } from './room';
import { currentUserId } from './session';

export type RoomPhase = 'idle' | 'joining' | 'in' | 'failed';

export const currentRoom = signal<RoomDetail | null>(null);
export const roomPhase = signal<RoomPhase>('idle');
/** Why entering failed (an error code: ROOM_FULL, ROOM_ENDED, KICKED, ROOM_NOT_FOUND…). */
export const roomFailure = signal<string | null>(null);
export const messages = signal<ChatMessage[]>([]);
/** Cursor of older history, null when everything is loaded. */
export const olderCursor = signal<string | null>(null);
export const chatLoading = signal(false);
/** The socket is inside this room: set after each `room:join` ack over the socket (the
 * first one and every re-join after a reconnect, each with a new `epoch`), null when not.
 * Media (the SFU session) follows it. */
export const socketJoin = signal<{ roomId: string; epoch: number } | null>(null);
/** The room key for the invite link (hosts and co-hosts of a locked room), when known. */
export const roomKey = signal<string | null>(null);
/** Seconds to wait before the next message (SLOW_MODE), with when that was said (ms). */
export const slowModeWait = signal<{ secs: number; at: number } | null>(null);
/** Rooms this page was removed from: the lobby shows them as closed to us. */
export const kickedFrom = signal<ReadonlySet<string>>(new Set());

const CHAT_PAGE = 30;
const OFFLINE_RESYNC_MS = 5000;

let activeRoomId: string | null = null;
/** The `?key=` the room was opened with: sent with every join (a locked room needs it). */
let activeKey: string | null = null;
let joinEpoch = 0;
let resyncTimer: ReturnType<typeof setInterval> | undefined;

export const activeRoom = (): string | null => activeRoomId;

function reset(): void {
  currentRoom.value = null;
  socketJoin.value = null;
  messages.value = [];
  olderCursor.value = null;
  chatLoading.value = false;
  roomKey.value = null;
  slowModeWait.value = null;
  clearInterval(resyncTimer);
  resyncTimer = undefined;
}

export async function enterRoom(roomId: string, key: string | null = roomKeyFromUrl()): Promise<void> {
  if (activeRoomId === roomId && roomPhase.value !== 'failed') return;
  // Opened another room's link from inside a room: give up the old seat.
  if (activeRoomId) void leaveRoom({ navigateHome: false });
  reset();
  resetMarks();
  activeRoomId = roomId;
  activeKey = key;
  roomPhase.value = 'joining';
  roomFailure.value = null;
  try {
    const seat = await takeSeat(roomId);
    if (activeRoomId !== roomId) return;
    currentRoom.value = seat.room;
    roomPhase.value = 'in';
    if (seat.viaSocket) socketEntered(roomId);
    // Connected while REST was answering: the reconnect hook saw no room yet.
    if (!seat.viaSocket && isConnected()) void joinOverSocket(roomId);
  } catch (err) {
    if (activeRoomId !== roomId) return;
    activeRoomId = null;
    roomPhase.value = 'failed';
    roomFailure.value = errorCode(err);
    if (roomFailure.value === 'KICKED') markKicked(roomId);
    return;
  }
  await loadLatestChat(roomId);
  resyncTimer = setInterval(() => {
    if (!isConnected() && activeRoomId === roomId) void resyncOverRest(roomId);
  }, OFFLINE_RESYNC_MS);
}

/** The seat, and the room as the server has it. With the live connection up, `room:join`
 * takes the seat and puts this socket in the room in one step (so the others hear about
 * us at once); without it, or when it does not answer, REST does, and the socket joins
 * the room when it connects. */
async function takeSeat(roomId: string): Promise<{ room: RoomDetail; viaSocket: boolean }> {
  if (isConnected()) {
    try {
      return { room: (await request(ClientEvent.roomJoin, joinPayload(roomId))).room, viaSocket: true };
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'TIMEOUT' && code !== 'REALTIME_OFFLINE') throw err;
    }
  }
  return { room: (await api.join(roomId, activeKey)).room, viaSocket: false };
}

function joinPayload(roomId: string): { roomId: string; roomKey?: string } {
  return activeKey ? { roomId, roomKey: activeKey } : { roomId };
}

async function joinOverSocket(roomId: string): Promise<void> {
  try {
    const ack = await request(ClientEvent.roomJoin, joinPayload(roomId));
    if (activeRoomId !== roomId) return;
    currentRoom.value = ack.room;
    socketEntered(roomId);
  } catch (err) {
    if (activeRoomId !== roomId) return;
    const code = errorCode(err);
    if (code === 'KICKED') exitRoom('notice.kicked', 'error');
    else if (code === 'ROOM_ENDED' || code === 'ROOM_NOT_FOUND') exitRoom('notice.roomEnded', 'info');
    // Other failures (timeout): the next reconnect or the REST resync tries again.
  }
}

function socketEntered(roomId: string): void {
  mark('roomJoinAck');
  socketJoin.value = { roomId, epoch: ++joinEpoch };
}

/** The newest page of history, merged with what we have (entry and catch-up). */
async function loadLatestChat(roomId: string): Promise<void> {
  try {
    const page = await api.chat(roomId, null, CHAT_PAGE);
    if (activeRoomId !== roomId) return;
    const firstLoad = messages.value.length === 0;
    messages.value = mergeMessages(messages.value, page.messages);
    if (firstLoad) olderCursor.value = page.nextCursor;
  } catch (err) {
    if (activeRoomId === roomId) handleGone(err);
  }
}

export async function loadOlderMessages(): Promise<void> {
  const roomId = activeRoomId;
  const cursor = olderCursor.value;
  if (!roomId || !cursor || chatLoading.value) return;
  chatLoading.value = true;
  try {
    const page = await api.chat(roomId, cursor, CHAT_PAGE);
    if (activeRoomId !== roomId) return;
    messages.value = mergeMessages(messages.value, page.messages);
    olderCursor.value = page.nextCursor;
  } catch (err) {
    if (activeRoomId === roomId) handleGone(err);
  } finally {
    chatLoading.value = false;
  }
}

async function resyncOverRest(roomId: string): Promise<void> {
  try {
    const room = await api.room(roomId);
    if (activeRoomId !== roomId) return;
    if (room.status === 'ENDED') return exitRoom('notice.roomEnded', 'info');
    if (!room.participants.some((p) => p.userId === currentUserId())) {
      return exitRoom('notice.removed', 'info');
    }
    currentRoom.value = room;
    await loadLatestChat(roomId);
  } catch (err) {
    if (activeRoomId === roomId) handleGone(err);
  }
}

/** REST answers that mean we are no longer in the room. */
function handleGone(err: unknown): void {
  const code = errorCode(err);
  if (code === 'ROOM_ENDED' || code === 'ROOM_NOT_FOUND') exitRoom('notice.roomEnded', 'info');
  else if (code === 'KICKED') exitRoom('notice.kicked', 'error');
  else if (code === 'NOT_A_PARTICIPANT') exitRoom('notice.removed', 'info');
}

/** Leaves the room view for the lobby with a message (kicked, ended…). */
export function exitRoom(key: MessageKey, kind: 'info' | 'error'): void {
  if (key === 'notice.kicked' && activeRoomId) markKicked(activeRoomId);
  activeRoomId = null;
  roomPhase.value = 'idle';
  reset();
  showNotice(kind, key);
  navigate('/');
}

function markKicked(roomId: string): void {
  kickedFrom.value = new Set([...kickedFrom.value, roomId]);
}

/** The person leaves: free the seat (socket when connected, else REST), back to the lobby. */
export async function leaveRoom(options: { navigateHome?: boolean } = {}): Promise<void> {
  const roomId = activeRoomId;
  activeRoomId = null;
  roomPhase.value = 'idle';
  reset();
  if (options.navigateHome !== false) navigate('/');
  if (!roomId) return;
  try {
    if (isConnected()) await request(ClientEvent.roomLeave, { roomId });
    else await api.leave(roomId);
  } catch (err) {
    // Not in the room any more, or it ended: nothing to undo. Otherwise retry over REST.
    if (err instanceof ApiError && err.code === 'TIMEOUT') await api.leave(roomId).catch(() => {});
  }
}

/** Forget the room without telling the server (signed out: the token is gone). */
export function dropRoom(): void {
  activeRoomId = null;
  roomPhase.value = 'idle';
  reset();
}

function change(roomId: string, c: RoomChange): void {
  if (roomId !== activeRoomId || !currentRoom.value) return;
  currentRoom.value = reduceRoom(currentRoom.value, c);
}

export async function sendMessage(text: string): Promise<void> {
  const roomId = activeRoomId;
  const message = text.trim();
  if (!roomId || !message) return;
  try {
    const sent = isConnected()
      ? (await request(ClientEvent.chatMessage, { roomId, message })).message
      : await api.sendChat(roomId, message);
    slowModeWait.value = null;
    if (activeRoomId === roomId) messages.value = mergeMessages(messages.value, [sent]);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'SLOW_MODE') {
      const secs = Number(err.details?.retryAfterSecs ?? currentRoom.value?.slowModeSecs ?? 1);
      slowModeWait.value = { secs: Math.max(1, Math.ceil(secs)), at: Date.now() };
    }
    throw err;
  }
}

/** Hosts and co-hosts any message, everyone their own: gone for the whole room. */
export async function deleteMessage(messageId: string): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  if (isConnected()) await request(ClientEvent.chatDelete, { roomId, messageId });
  else await api.deleteChat(roomId, messageId);
  if (activeRoomId === roomId) messages.value = removeMessage(messages.value, messageId);
}

/** Mic, camera and hand exist only over the socket (no REST endpoint). */
export async function setMuted(isMuted: boolean): Promise<void> {
  const roomId = activeRoomId;
  const me = currentUserId();
  if (!roomId || !me) return;
  await request(ClientEvent.toggleMic, { roomId, isMuted });
  change(roomId, { type: 'muted', userId: me, isMuted });
}

export async function setVideoOff(isVideoOff: boolean): Promise<void> {
  const roomId = activeRoomId;
  const me = currentUserId();
  if (!roomId || !me) return;
  await request(ClientEvent.toggleVideo, { roomId, isVideoOff });
  change(roomId, { type: 'video', userId: me, isVideoOff });
}

export async function setHandRaised(raised: boolean, userId?: string): Promise<void> {
  const roomId = activeRoomId;
  const me = currentUserId();
  if (!roomId || !me) return;
  if (raised) await request(ClientEvent.handRaise, { roomId });
  else await request(ClientEvent.handLower, userId && userId !== me ? { roomId, userId } : { roomId });
  change(roomId, { type: 'hand', userId: userId ?? me, raised });
}

export async function kick(userId: string): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  if (isConnected()) await request(ClientEvent.roomKick, { roomId, userId });
  else await api.kick(roomId, userId);
  change(roomId, { type: 'kicked', userId });
}

// Moderation (docs/MODERATION.md). Each answer that carries a view applies it at once; the
// room hears the same through `room:participant-updated`.

function applyParticipant(roomId: string, participant: Participant): void {
  change(roomId, { type: 'participant', participant });
}

/** Make (or unmake) a co-host: the host only. */
export async function setCohost(userId: string, cohost: boolean): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  const answer = isConnected()
    ? await request(ClientEvent.roomCohost, { roomId, userId, cohost })
    : await api.setCohost(roomId, userId, cohost);
  applyParticipant(roomId, answer.participant);
}

/** Hand the room over: the old host becomes a co-host. */
export async function transferHost(userId: string): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  const answer = isConnected()
    ? await request(ClientEvent.roomTransferHost, { roomId, userId })
    : await api.transferHost(roomId, userId);
  if (activeRoomId === roomId) currentRoom.value = answer.room;
}

/** Mute a microphone / stop a camera and lock it (`true`), or lift the lock (`false`). */
export async function hardMute(userId: string, what: { mic?: boolean; camera?: boolean }): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  const answer = isConnected()
    ? await request(ClientEvent.roomHardMute, { roomId, userId, ...what })
    : await api.hardMute(roomId, userId, what);
  applyParticipant(roomId, answer.participant);
}

/** Every microphone but ours muted (not locked). Returns how many. */
export async function muteAll(): Promise<number> {
  const roomId = activeRoomId;
  if (!roomId) return 0;
  return isConnected() ? (await request(ClientEvent.roomMuteAll, { roomId })).muted : (await api.muteAll(roomId)).muted;
}

/** Lock with a fresh key (kept for the invite link), or unlock. */
export async function setLocked(locked: boolean): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  let key: string | null = null;
  if (isConnected()) key = (await request(ClientEvent.roomLock, { roomId, locked })).roomKey ?? null;
  else if (locked) key = (await api.lock(roomId)).roomKey;
  else await api.unlock(roomId);
  if (activeRoomId !== roomId) return;
  roomKey.value = locked ? key : null;
  if (currentRoom.value) currentRoom.value = { ...currentRoom.value, isLocked: locked };
}

/** The key for the invite link: the one the lock gave, else asked of the server. */
export async function fetchRoomKey(): Promise<string | null> {
  const roomId = activeRoomId;
  if (!roomId) return null;
  if (roomKey.value) return roomKey.value;
  const key = (await api.roomKey(roomId)).roomKey;
  if (activeRoomId === roomId) roomKey.value = key;
  return key;
}

/** Live settings (the settings dialog). */
export async function updateSettings(settings: RoomSettings): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  const answer = isConnected()
    ? await request(ClientEvent.roomUpdate, { roomId, ...settings })
    : await api.updateRoom(roomId, settings);
  change(roomId, { type: 'settings', room: answer.room });
}

export async function report(userId: string, reason: ReportReason, message: string): Promise<void> {
  const roomId = activeRoomId;
  if (!roomId) return;
  const text = message.trim();
  const body = text ? { userId, reason, message: text } : { userId, reason };
  if (isConnected()) await request(ClientEvent.roomReport, { roomId, ...body });
  else await api.report(roomId, body);
}

onServer(ServerEvent.participantUpdated, (p) => applyParticipant(p.roomId, p.participant));
onServer(ServerEvent.chatDeleted, (p) => {
  if (p.roomId === activeRoomId) messages.value = removeMessage(messages.value, p.messageId);
});
onServer(ServerEvent.listUpdate, (u) => {
  // Settings changed by another host or co-host reach the room page through the lobby feed.
  if (u.room.id === activeRoomId && u.action === 'updated') change(u.room.id, { type: 'settings', room: u.room });
});

onServer(ServerEvent.userJoined, (p) =>
  change(p.roomId, { type: 'joined', user: p.user, participant: p.participant }),
);
onServer(ServerEvent.userLeft, (p) => {
  if (p.roomId !== activeRoomId) return;
  // Our own leave from another tab: this tab is out too.
  if (p.userId === currentUserId()) return exitRoom('notice.leftElsewhere', 'info');
  change(p.roomId, { type: 'left', userId: p.userId, newHostId: p.newHostId });
});
onServer(ServerEvent.userKicked, (p) => {
  if (p.roomId !== activeRoomId) return;
  if (p.userId === currentUserId()) return exitRoom('notice.kicked', 'error');
  change(p.roomId, { type: 'kicked', userId: p.userId });
});
onServer(ServerEvent.roomEnded, (p) => {
  if (p.roomId === activeRoomId) exitRoom('notice.roomEnded', 'info');
});
onServer(ServerEvent.chatMessage, (p) => {
  if (p.roomId === activeRoomId) messages.value = mergeMessages(messages.value, [p.message]);
});
onServer(ServerEvent.userMuted, (p) => change(p.roomId, { type: 'muted', userId: p.userId, isMuted: p.isMuted }));
onServer(ServerEvent.userVideo, (p) =>
  change(p.roomId, { type: 'video', userId: p.userId, isVideoOff: p.isVideoOff }),
);
onServer(ServerEvent.handRaised, (p) => change(p.roomId, { type: 'hand', userId: p.userId, raised: true }));
onServer(ServerEvent.handLowered, (p) => change(p.roomId, { type: 'hand', userId: p.userId, raised: false }));

onConnected(() => {
  const roomId = activeRoomId;
  if (!roomId || roomPhase.value !== 'in') return;
  void joinOverSocket(roomId);
  void loadLatestChat(roomId);
});
