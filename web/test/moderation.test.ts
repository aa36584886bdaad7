import { describe, expect, it } from 'vitest';

import { ApiError } from '../src/api/client';
import { errorKey, errorMessage } from '../src/errors';
import { setLang } from '../src/i18n';
import { inviteLink, parseRoute, roomKeyFromUrl } from '../src/router';
import { canDelete, removeMessage, visibleMessages } from '../src/state/chat';
import { applyListUpdate, applyPage, emptyLobby, isFiltered, matchesFilters, noFilters } from '../src/state/lobby';
import { isHost, isModerator, menuFor, orderedParticipants, reduceRoom } from '../src/state/room';
import type { ChatMessage } from '../src/api/types';
import { at, participant, room, roomDetail, user } from './fixtures';

const base = () =>
  roomDetail([
    participant('h', { role: 'HOST', joinedAt: at(0) }),
    participant('a', { joinedAt: at(1) }),
    participant('c', { role: 'COHOST', joinedAt: at(2) }),
  ]);

const msg = (id: string, sender: string, minute = 0): ChatMessage => ({
  id,
  roomId: 'r1',
  message: `text ${id}`,
  createdAt: at(minute),
  sender: user(sender),
});

describe('room:participant-updated', () => {
  it('replaces the whole view: role and locks', () => {
    const r = reduceRoom(base(), {
      type: 'participant',
      participant: participant('a', { role: 'COHOST', isMuted: true, micLocked: true, joinedAt: at(1) }),
    });
    const a = r.participants.find((p) => p.userId === 'a')!;
    expect(a).toMatchObject({ role: 'COHOST', isMuted: true, micLocked: true });
    expect(isModerator(r, 'a')).toBe(true);
    // Lifting the lock keeps the person muted until they unmute.
    const lifted = reduceRoom(r, {
      type: 'participant',
      participant: { ...a, micLocked: false },
    });
    expect(lifted.participants.find((p) => p.userId === 'a')).toMatchObject({ isMuted: true, micLocked: false });
  });

  it('ignores someone not in the room', () => {
    const r0 = base();
    expect(reduceRoom(r0, { type: 'participant', participant: participant('zz') })).toBe(r0);
  });

  it('never shows two hosts during a hand-over, and the room host follows', () => {
    const r = reduceRoom(base(), { type: 'participant', participant: participant('a', { role: 'HOST', joinedAt: at(1) }) });
    expect(r.participants.filter((p) => p.role === 'HOST').map((p) => p.userId)).toEqual(['a']);
    expect(r.participants.find((p) => p.userId === 'h')?.role).toBe('COHOST');
    expect(r.host.id).toBe('a');
  });

  it('keeps co-hosts when the host leaves and hands over', () => {
    const r = reduceRoom(base(), { type: 'left', userId: 'h', newHostId: 'c' });
    expect(isHost(r, 'c')).toBe(true);
    const r2 = reduceRoom(
      roomDetail([
        participant('h', { role: 'HOST' }),
        participant('a'),
        participant('c', { role: 'COHOST' }),
      ]),
      { type: 'left', userId: 'h', newHostId: 'a' },
    );
    expect(r2.participants.map((p) => [p.userId, p.role])).toEqual([
      ['a', 'HOST'],
      ['c', 'COHOST'],
    ]);
  });

  it('orders host, co-hosts, then by arrival', () => {
    expect(orderedParticipants(base()).map((p) => p.userId)).toEqual(['h', 'c', 'a']);
  });

  it('applies new settings of this room only', () => {
    const r0 = base();
    const updated = room('r1', { title: 'New', isLocked: true, slowModeSecs: 10, noMic: true, secondLanguage: 'vi' });
    const r = reduceRoom(r0, { type: 'settings', room: updated });
    expect(r).toMatchObject({ title: 'New', isLocked: true, slowModeSecs: 10, noMic: true, secondLanguage: 'vi' });
    expect(r.participants).toBe(r0.participants);
    expect(reduceRoom(r0, { type: 'settings', room: room('other') })).toBe(r0);
  });
});

describe('person menu rules', () => {
  const target = (role: 'HOST' | 'COHOST' | 'PARTICIPANT') => participant('t', { role });

  it('the host may do everything to others, nothing to themself but nothing', () => {
    expect(menuFor('HOST', target('COHOST'), false)).toEqual({
      cohost: true,
      transfer: true,
      moderate: true,
      report: true,
      block: true,
    });
    expect(Object.values(menuFor('HOST', target('HOST'), true)).some(Boolean)).toBe(false);
  });

  it('a co-host moderates participants only, never the host or another co-host', () => {
    expect(menuFor('COHOST', target('PARTICIPANT'), false)).toMatchObject({ cohost: false, transfer: false, moderate: true });
    expect(menuFor('COHOST', target('HOST'), false).moderate).toBe(false);
    expect(menuFor('COHOST', target('COHOST'), false).moderate).toBe(false);
  });

  it('a participant may report and block only', () => {
    expect(menuFor('PARTICIPANT', target('HOST'), false)).toEqual({
      cohost: false,
      transfer: false,
      moderate: false,
      report: true,
      block: true,
    });
  });
});

describe('chat moderation', () => {
  it('chat:deleted removes the message, a repeat changes nothing', () => {
    const list = [msg('1', 'a', 0), msg('2', 'b', 1)];
    const next = removeMessage(list, '1');
    expect(next.map((m) => m.id)).toEqual(['2']);
    expect(removeMessage(next, '1')).toBe(next);
  });

  it("hides a blocked person's lines from the blocker only", () => {
    const list = [msg('1', 'a', 0), msg('2', 'b', 1), msg('3', 'a', 2)];
    expect(visibleMessages(list, new Set(['a'])).map((m) => m.id)).toEqual(['2']);
    expect(visibleMessages(list, new Set())).toBe(list);
  });

  it('hosts and co-hosts delete any message, others their own', () => {
    expect(canDelete(msg('1', 'a'), 'a', false)).toBe(true);
    expect(canDelete(msg('1', 'a'), 'b', false)).toBe(false);
    expect(canDelete(msg('1', 'a'), 'b', true)).toBe(true);
    expect(canDelete(msg('1', 'a'), undefined, true)).toBe(false);
  });
});

describe('lobby: level, microphone, second language, sort', () => {
  const f = (patch: Partial<ReturnType<typeof noFilters>>) => ({ ...noFilters(), ...patch });

  it('filters live updates like the server', () => {
    expect(matchesFilters(room('1', { level: 'beginner' }), f({ level: 'beginner' }))).toBe(true);
    expect(matchesFilters(room('1', { level: 'advanced' }), f({ level: 'beginner' }))).toBe(false);
    expect(matchesFilters(room('1', { micRequired: true }), f({ micRequired: 'true' }))).toBe(true);
    expect(matchesFilters(room('1'), f({ micRequired: 'true' }))).toBe(false);
    expect(matchesFilters(room('1'), f({ micRequired: 'false' }))).toBe(true);
    expect(matchesFilters(room('1', { micRequired: true }), f({ micRequired: 'false' }))).toBe(false);
    // `language=` matches the second language too.
    expect(matchesFilters(room('1', { language: 'en', secondLanguage: 'vi' }), f({ language: 'vi' }))).toBe(true);
    expect(matchesFilters(room('1', { language: 'en' }), f({ language: 'vi' }))).toBe(false);
  });

  it('sort is not a filter', () => {
    expect(isFiltered(f({ sort: 'popular' }))).toBe(false);
    expect(isFiltered(f({ level: 'beginner' }))).toBe(true);
    expect(isFiltered(f({ micRequired: 'false' }))).toBe(true);
  });

  it('keeps "most people first, then newest" through live updates', () => {
    const popular = f({ sort: 'popular' });
    let s = applyPage(
      emptyLobby(),
      [
        room('old-big', { participantCount: 5, createdAt: at(0), updatedAt: at(0) }),
        room('new-small', { participantCount: 1, createdAt: at(5), updatedAt: at(5) }),
        room('mid', { participantCount: 1, createdAt: at(3), updatedAt: at(3) }),
      ],
      popular,
      { append: false, requestedAt: 0, now: 1 },
    );
    expect(s.rooms.map((r) => r.id)).toEqual(['old-big', 'new-small', 'mid']);
    s = applyListUpdate(s, { action: 'updated', room: room('mid', { participantCount: 6, createdAt: at(3), updatedAt: at(6) }) }, popular);
    expect(s.rooms.map((r) => r.id)).toEqual(['mid', 'old-big', 'new-small']);
    const newest = applyListUpdate(s, { action: 'created', room: room('x', { createdAt: at(9), updatedAt: at(9) }) }, noFilters());
    expect(newest.rooms[0].id).toBe('x');
  });
});

describe('invite links and admin route', () => {
  it('reads the key of /r/<id>?key=…, builds the invite link', () => {
    expect(roomKeyFromUrl('?key=abc%2B1')).toBe('abc+1');
    expect(roomKeyFromUrl('')).toBeNull();
    expect(roomKeyFromUrl('?key=')).toBeNull();
    expect(inviteLink('r1', 'a b')).toBe(`${window.location.origin}/r/r1?key=a%20b`);
    expect(parseRoute('/admin')).toEqual({ name: 'admin' });
  });
});

describe('moderation error codes', () => {
  it('translates every refusal a person can meet, in both languages', () => {
    const codes = [
      'ROOM_LOCKED', 'BAD_ROOM_KEY', 'BLOCKED', 'BANNED', 'MUTED_BY_HOST', 'SLOW_MODE', 'NOT_COHOST',
      'NOT_ADMIN', 'MESSAGE_NOT_FOUND', 'INVALID_TARGET',
    ];
    for (const code of codes) expect(errorKey(code), code).not.toBe('error.unknown');
    setLang('vi');
    expect(errorMessage(new ApiError(403, { code: 'ROOM_LOCKED', message: 'x' }))).toMatch(/khóa/);
    setLang('en');
    expect(errorMessage(new ApiError(403, { code: 'BLOCKED', message: 'x' }))).toBe("You can't join this room right now.");
  });

  it('says how long slow mode still asks to wait', () => {
    const err = new ApiError(429, { code: 'SLOW_MODE', message: 'x', details: { retryAfterSecs: 4.2 } });
    expect(errorMessage(err)).toContain('5 s');
  });
});
