import type { Participant, Room, RoomDetail, UserPublic } from '../src/api/types';

export function user(id: string, displayName = `User ${id}`): UserPublic {
  return { id, username: null, displayName, isGuest: true };
}

export function room(id: string, patch: Partial<Room> = {}): Room {
  return {
    id,
    title: `Room ${id}`,
    topic: null,
    language: 'en',
    level: 'any',
    maxParticipants: 6,
    participantCount: 1,
    status: 'LIVE',
    host: user('h'),
    members: [user('h')],
    createdAt: '2025-01-01T10:00:00.000000Z',
    updatedAt: '2025-01-01T10:00:00.000000Z',
    endedAt: null,
    ...patch,
  };
}

export function participant(userId: string, patch: Partial<Participant> = {}): Participant {
  return {
    userId,
    displayName: `User ${userId}`,
    username: null,
    isGuest: true,
    role: 'PARTICIPANT',
    isMuted: false,
    isVideoOff: false,
    handRaised: false,
    joinedAt: '2025-01-01T10:00:00.000000Z',
    ...patch,
  };
}

export function roomDetail(participants: Participant[], patch: Partial<RoomDetail> = {}): RoomDetail {
  const host = participants.find((p) => p.role === 'HOST') ?? participants[0];
  return {
    ...room('r1'),
    participants,
    participantCount: participants.length,
    members: participants.map((p) => user(p.userId, p.displayName)),
    host: user(host.userId, host.displayName),
    ...patch,
  };
}

export const at = (minute: number) => `2025-01-01T10:${String(minute).padStart(2, '0')}:00.000000Z`;
