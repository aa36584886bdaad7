import { describe, expect, it } from 'vitest';

import { initials, isHost, orderedParticipants, reduceRoom } from '../src/state/room';
import { at, participant, roomDetail, user } from './fixtures';

const base = () =>
  roomDetail([
    participant('h', { role: 'HOST', joinedAt: at(0) }),
    participant('a', { joinedAt: at(1) }),
    participant('b', { joinedAt: at(2) }),
  ]);

describe('room state reducer', () => {
  it('adds a joining participant once, keeping counts and members in step', () => {
    let r = reduceRoom(base(), { type: 'joined', user: user('c', 'Chi'), participant: participant('c', { displayName: 'Chi' }) });
    r = reduceRoom(r, { type: 'joined', user: user('c', 'Chi'), participant: participant('c', { displayName: 'Chi' }) });
    expect(r.participants.map((p) => p.userId)).toEqual(['h', 'a', 'b', 'c']);
    expect(r.participantCount).toBe(4);
    expect(r.members.map((m) => m.displayName)).toContain('Chi');
  });

  it('removes a leaving participant', () => {
    const r = reduceRoom(base(), { type: 'left', userId: 'b', newHostId: null });
    expect(r.participants.map((p) => p.userId)).toEqual(['h', 'a']);
    expect(r.participantCount).toBe(2);
    expect(isHost(r, 'h')).toBe(true);
  });

  it('hands HOST over when the host leaves', () => {
    const r = reduceRoom(base(), { type: 'left', userId: 'h', newHostId: 'a' });
    expect(isHost(r, 'a')).toBe(true);
    expect(r.participants.filter((p) => p.role === 'HOST')).toHaveLength(1);
    expect(r.host.id).toBe('a');
  });

  it('removes a kicked participant', () => {
    const r = reduceRoom(base(), { type: 'kicked', userId: 'a' });
    expect(r.participants.map((p) => p.userId)).toEqual(['h', 'b']);
    expect(r.members.map((m) => m.id)).toEqual(['h', 'b']);
  });

  it('tracks mic, camera and hand per person', () => {
    let r = reduceRoom(base(), { type: 'muted', userId: 'a', isMuted: true });
    r = reduceRoom(r, { type: 'video', userId: 'b', isVideoOff: true });
    r = reduceRoom(r, { type: 'hand', userId: 'b', raised: true });
    const byId = Object.fromEntries(r.participants.map((p) => [p.userId, p]));
    expect(byId.a.isMuted).toBe(true);
    expect(byId.b.isVideoOff).toBe(true);
    expect(byId.b.handRaised).toBe(true);
    expect(byId.h).toMatchObject({ isMuted: false, isVideoOff: false, handRaised: false });
    r = reduceRoom(r, { type: 'hand', userId: 'b', raised: false });
    expect(r.participants.find((p) => p.userId === 'b')?.handRaised).toBe(false);
  });

  it('ignores changes for someone not in the room', () => {
    const r0 = base();
    expect(reduceRoom(r0, { type: 'muted', userId: 'zz', isMuted: true })).toBe(r0);
  });

  it('marks the room ended', () => {
    expect(reduceRoom(base(), { type: 'ended' }).status).toBe('ENDED');
  });

  it('orders the host first, then by time of arrival', () => {
    const r = reduceRoom(base(), { type: 'left', userId: 'h', newHostId: 'b' });
    expect(orderedParticipants(r).map((p) => p.userId)).toEqual(['b', 'a']);
  });

  it('makes initials for tiles', () => {
    expect(initials('Nguyễn Văn An')).toBe('NA');
    expect(initials('bob')).toBe('B');
    expect(initials('  ')).toBe('?');
    expect(initials('đức')).toBe('Đ');
  });
});
