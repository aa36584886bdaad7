import { describe, expect, it } from 'vitest';

import { applyListUpdate, applyPage, emptyLobby, foldText, matchesFilters, noFilters } from '../src/state/lobby';
import { at, room } from './fixtures';

const none = noFilters();
const ids = (s: { rooms: { id: string }[] }) => s.rooms.map((r) => r.id);

describe('lobby list reducer', () => {
  it('adds created rooms newest first', () => {
    let s = emptyLobby();
    s = applyListUpdate(s, { action: 'created', room: room('a', { createdAt: at(1), updatedAt: at(1) }) }, none);
    s = applyListUpdate(s, { action: 'created', room: room('b', { createdAt: at(2), updatedAt: at(2) }) }, none);
    expect(ids(s)).toEqual(['b', 'a']);
  });

  it('replaces a room on update and removes it when it ends', () => {
    let s = applyListUpdate(emptyLobby(), { action: 'created', room: room('a') }, none);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { participantCount: 3, updatedAt: at(5) }) }, none);
    expect(s.rooms[0].participantCount).toBe(3);
    s = applyListUpdate(s, { action: 'ended', room: room('a', { status: 'ENDED', updatedAt: at(6) }) }, none);
    expect(s.rooms).toEqual([]);
  });

  it('ignores an older view of a room arriving late', () => {
    let s = applyListUpdate(emptyLobby(), { action: 'updated', room: room('a', { participantCount: 4, updatedAt: at(9) }) }, none);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { participantCount: 2, updatedAt: at(7) }) }, none);
    expect(s.rooms[0].participantCount).toBe(4);
  });

  it('never brings an ended room back, even with a late update', () => {
    let s = applyListUpdate(emptyLobby(), { action: 'created', room: room('a', { updatedAt: at(1) }) }, none);
    s = applyListUpdate(s, { action: 'ended', room: room('a', { status: 'ENDED', updatedAt: at(3) }) }, none);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { updatedAt: at(2) }) }, none);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { updatedAt: at(3) }) }, none);
    expect(s.rooms).toEqual([]);
  });

  it('applies the active filters to live updates', () => {
    const vi = { ...none, language: 'vi' };
    let s = applyListUpdate(emptyLobby(), { action: 'created', room: room('en1', { language: 'en' }) }, vi);
    s = applyListUpdate(s, { action: 'created', room: room('vi1', { language: 'vi' }) }, vi);
    expect(ids(s)).toEqual(['vi1']);
  });

  it('drops a room that fills up under "has a free seat" and brings it back when a seat frees', () => {
    const seat = { ...none, hasSeat: true };
    let s = applyListUpdate(emptyLobby(), { action: 'created', room: room('a', { maxParticipants: 2, participantCount: 1 }) }, seat);
    expect(ids(s)).toEqual(['a']);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { maxParticipants: 2, participantCount: 2, updatedAt: at(2) }) }, seat);
    expect(ids(s)).toEqual([]);
    s = applyListUpdate(s, { action: 'updated', room: room('a', { maxParticipants: 2, participantCount: 1, updatedAt: at(3) }) }, seat);
    expect(ids(s)).toEqual(['a']);
  });

  it('matches topic and search text ignoring case, accents and Vietnamese tone marks', () => {
    const r = room('a', { title: 'Luyện nói Tiếng Anh', topic: 'Du lịch Đà Nẵng' });
    expect(matchesFilters(r, { ...none, q: 'tieng anh' })).toBe(true);
    expect(matchesFilters(r, { ...none, q: 'da nang' })).toBe(true);
    expect(matchesFilters(r, { ...none, q: 'tiếng nhật' })).toBe(false);
    expect(matchesFilters(r, { ...none, topic: 'du lich da nang' })).toBe(true);
    expect(matchesFilters(r, { ...none, topic: 'du lich' })).toBe(false);
    expect(foldText('  ĐÀ   Nẵng ')).toBe('da nang');
  });

  it('a REST page replaces the list but keeps rooms that changed while it was in flight', () => {
    let s = applyListUpdate(emptyLobby(), { action: 'created', room: room('old') }, none, 1000);
    const requestedAt = 2000;
    s = applyListUpdate(s, { action: 'created', room: room('new', { createdAt: at(9), updatedAt: at(9) }) }, none, 2500);
    s = applyPage(s, [room('p1', { createdAt: at(5), updatedAt: at(5) })], none, { append: false, requestedAt, now: 3000 });
    expect(ids(s)).toEqual(['new', 'p1']);
  });

  it('a REST page does not overwrite a newer live view, nor resurrect an ended room', () => {
    let s = applyListUpdate(emptyLobby(), { action: 'updated', room: room('a', { participantCount: 5, updatedAt: at(9) }) }, none, 2500);
    s = applyListUpdate(s, { action: 'ended', room: room('b', { status: 'ENDED', updatedAt: at(9) }) }, none, 2500);
    s = applyPage(
      s,
      [room('a', { participantCount: 2, updatedAt: at(4) }), room('b', { updatedAt: at(4) })],
      none,
      { append: false, requestedAt: 2000, now: 3000 },
    );
    expect(ids(s)).toEqual(['a']);
    expect(s.rooms[0].participantCount).toBe(5);
  });

  it('"load more" appends without dropping what is shown', () => {
    let s = applyPage(emptyLobby(), [room('a', { createdAt: at(5) })], none, { append: false, requestedAt: 0 });
    s = applyPage(s, [room('b', { createdAt: at(1) })], none, { append: true, requestedAt: 0 });
    expect(ids(s)).toEqual(['a', 'b']);
  });
});
