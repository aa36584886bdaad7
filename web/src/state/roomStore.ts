// The room this page is in. On entry the server's own view is loaded (the seat taken with
// `room:join`, or over REST while the socket is down; then the chat history over REST);
// after every reconnect `room:join` brings a fresh snapshot, and socket events change it. While the socket is down the room is
// re-read over REST every few seconds, so the page never shows a stale room for long.
import { signal } from '@preact/signals';

import { ApiError, api } from '../api/client';
import type { ChatMessage, RoomDetail } from '../api/types';
import { errorCode } from '../errors';
import type { MessageKey } from '../i18n';
import { navigate } from '../router';
import { mark, resetMarks } from '../media/timeline';
import { ClientEvent, ServerEvent } from '../realtime/events';
import { isConnected, onConnected, onServer, request } from '../realtime/socket';
import { mergeMessages } from './chat';
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
/** Rooms this page was removed from: the lobby shows them as closed to us. */
export const kickedFrom = signal<ReadonlySet<string>>(new Set());

const CHAT_PAGE = 30;
const OFFLINE_RESYNC_MS = 5000;

let activeRoomId: string | null = null;
let joinEpoch = 0;
let resyncTimer: ReturnType<typeof setInterval> | undefined;

export const activeRoom = (): string | null => activeRoomId;

function reset(): void {
  currentRoom.value = null;
  socketJoin.value = null;
  messages.value = [];
  olderCursor.value = null;
  chatLoading.value = false;
  clearInterval(resyncTimer);
  resyncTimer = undefined;
}

export async function enterRoom(roomId: string): Promise<void> {
  if (activeRoomId === roomId && roomPhase.value !== 'failed') return;
  // Opened another room's link from inside a room: give up the old seat.
  if (activeRoomId) void leaveRoom({ navigateHome: false });
  reset();
  resetMarks();
  activeRoomId = roomId;
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
      return { room: (await request(ClientEvent.roomJoin, { roomId })).room, viaSocket: true };
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'TIMEOUT' && code !== 'REALTIME_OFFLINE') throw err;
    }
  }
  return { room: (await api.join(roomId)).room, viaSocket: false };
}

async function joinOverSocket(roomId: string): Promise<void> {
  try {
    const ack = await request(ClientEvent.roomJoin, { roomId });
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
  const sent = isConnected()
    ? (await request(ClientEvent.chatMessage, { roomId, message })).message
    : await api.sendChat(roomId, message);
  if (activeRoomId === roomId) messages.value = mergeMessages(messages.value, [sent]);
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
