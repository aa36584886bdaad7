// The room a person is in, as a pure reducer over RoomDetail: a REST/ack snapshot sets it,
// socket events change it (joins, leaves with host hand-over, kicks, mic/camera/hand).
import type { Participant, RoomDetail, UserPublic } from '../api/types';

export type RoomChange =
  | { type: 'joined'; user: UserPublic; participant: Participant }
  | { type: 'left'; userId: string; newHostId: string | null }
  | { type: 'kicked'; userId: string }
  | { type: 'muted'; userId: string; isMuted: boolean }
  | { type: 'video'; userId: string; isVideoOff: boolean }
  | { type: 'hand'; userId: string; raised: boolean }
  | { type: 'ended' };

function withParticipants(room: RoomDetail, participants: Participant[]): RoomDetail {
  const hostP = participants.find((p) => p.role === 'HOST');
  const host: UserPublic = hostP ? toUser(hostP) : room.host;
  return {
    ...room,
    participants,
    participantCount: participants.length,
    members: participants.map(toUser),
    host,
  };
}

export function toUser(p: Participant): UserPublic {
  return { id: p.userId, username: p.username, displayName: p.displayName, isGuest: p.isGuest };
}

function update(room: RoomDetail, userId: string, change: Partial<Participant>): RoomDetail {
  if (!room.participants.some((p) => p.userId === userId)) return room;
  return {
    ...room,
    participants: room.participants.map((p) => (p.userId === userId ? { ...p, ...change } : p)),
  };
}

function remove(room: RoomDetail, userId: string, newHostId: string | null): RoomDetail {
  let participants = room.participants.filter((p) => p.userId !== userId);
  if (newHostId) {
    participants = participants.map((p) => ({
      ...p,
      role: p.userId === newHostId ? 'HOST' : 'PARTICIPANT',
    }));
  }
  return withParticipants(room, participants);
}

export function reduceRoom(room: RoomDetail, change: RoomChange): RoomDetail {
  switch (change.type) {
    case 'joined': {
      const others = room.participants.filter((p) => p.userId !== change.participant.userId);
      const participant = { ...change.participant, displayName: change.user.displayName };
      return withParticipants(room, [...others, participant]);
    }
    case 'left':
      return remove(room, change.userId, change.newHostId);
    case 'kicked':
      return remove(room, change.userId, null);
    case 'muted':
      return update(room, change.userId, { isMuted: change.isMuted });
    case 'video':
      return update(room, change.userId, { isVideoOff: change.isVideoOff });
    case 'hand':
      return update(room, change.userId, { handRaised: change.raised });
    case 'ended':
      return { ...room, status: 'ENDED' };
  }
}

/** Host first, then who has been there longest. */
export function orderedParticipants(room: RoomDetail): Participant[] {
  return [...room.participants].sort(
    (a, b) =>
      (a.role === 'HOST' ? 0 : 1) - (b.role === 'HOST' ? 0 : 1) ||
      Date.parse(a.joinedAt) - Date.parse(b.joinedAt),
  );
}

export function isHost(room: RoomDetail, userId: string | undefined): boolean {
  return !!userId && room.participants.some((p) => p.userId === userId && p.role === 'HOST');
}

/** Up to two letters for a placeholder tile: "Nguyễn Văn An" → "NA", "bob" → "B". */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = [...words[0]][0] ?? '';
  const last = words.length > 1 ? ([...words[words.length - 1]][0] ?? '') : '';
  return (first + last).toUpperCase();
}
