// The room a person is in, as a pure reducer over RoomDetail: a REST/ack snapshot sets it,
// socket events change it (joins, leaves with host hand-over, kicks, mic/camera/hand,
// roles and host locks, live settings).
import type { Participant, Room, RoomDetail, UserPublic } from '../api/types';

export type RoomChange =
  | { type: 'joined'; user: UserPublic; participant: Participant }
  | { type: 'left'; userId: string; newHostId: string | null }
  | { type: 'kicked'; userId: string }
  | { type: 'muted'; userId: string; isMuted: boolean }
  | { type: 'video'; userId: string; isVideoOff: boolean }
  | { type: 'hand'; userId: string; raised: boolean }
  /** `room:participant-updated` (role, locks): the whole view replaces ours. */
  | { type: 'participant'; participant: Participant }
  /** New settings (`room:update` ack, PATCH answer, `room:list-update` of this room). */
  | { type: 'settings'; room: Room }
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
    // The new host is the only HOST; co-hosts stay co-hosts.
    participants = participants.map((p) => ({
      ...p,
      role: p.userId === newHostId ? 'HOST' : p.role === 'HOST' ? 'PARTICIPANT' : p.role,
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
    case 'participant': {
      const next = change.participant;
      if (!room.participants.some((p) => p.userId === next.userId)) return room;
      let participants = room.participants.map((p) => (p.userId === next.userId ? { ...p, ...next } : p));
      // A hand-over arrives as two updates; never show two hosts in between.
      if (next.role === 'HOST') {
        participants = participants.map((p) =>
          p.userId !== next.userId && p.role === 'HOST' ? { ...p, role: 'COHOST' } : p,
        );
      }
      return withParticipants(room, participants);
    }
    case 'settings': {
      const r = change.room;
      if (r.id !== room.id) return room;
      return {
        ...room,
        title: r.title,
        topic: r.topic,
        language: r.language,
        level: r.level,
        maxParticipants: r.maxParticipants,
        isLocked: r.isLocked,
        secondLanguage: r.secondLanguage,
        micRequired: r.micRequired,
        noMic: r.noMic,
        slowModeSecs: r.slowModeSecs,
        updatedAt: r.updatedAt,
      };
    }
    case 'ended':
      return { ...room, status: 'ENDED' };
  }
}

const ROLE_ORDER: Record<Participant['role'], number> = { HOST: 0, COHOST: 1, PARTICIPANT: 2 };

/** Host first, then co-hosts, then who has been there longest. */
export function orderedParticipants(room: RoomDetail): Participant[] {
  return [...room.participants].sort(
    (a, b) =>
      (ROLE_ORDER[a.role] ?? 2) - (ROLE_ORDER[b.role] ?? 2) || Date.parse(a.joinedAt) - Date.parse(b.joinedAt),
  );
}

/** The host or a co-host: may kick, hard-mute, lock, change settings, delete messages. */
export function isModerator(room: RoomDetail, userId: string | undefined): boolean {
  return (
    !!userId && room.participants.some((p) => p.userId === userId && (p.role === 'HOST' || p.role === 'COHOST'))
  );
}

/** What the person menu offers `actor` for `target` (docs/MODERATION.md "Roles in a room"):
 * a co-host cannot act on the host or another co-host; nobody moderates themself. */
export function menuFor(
  actorRole: Participant['role'] | undefined,
  target: Participant,
  isSelf: boolean,
): { cohost: boolean; transfer: boolean; moderate: boolean; report: boolean; block: boolean } {
  const host = actorRole === 'HOST';
  const moderator = host || actorRole === 'COHOST';
  return {
    cohost: host && !isSelf,
    transfer: host && !isSelf,
    moderate: !isSelf && (host || (moderator && target.role === 'PARTICIPANT')),
    report: !isSelf,
    block: !isSelf,
  };
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
