// The lobby list as a pure reducer: REST pages set it, `room:list-update` events change it.
// Live updates are filtered here with the same rules the server applies to GET /api/rooms,
// and an update older than what we already know (room.updatedAt) is dropped.
import type { LobbyFilters, Room } from '../api/types';
import type { ListUpdate } from '../realtime/events';

export interface LobbyState {
  /** Rooms shown, in the filters' order (newest first, or most people first). */
  rooms: Room[];
  /** Latest version seen per room id, ended rooms included, to drop late updates;
   * `receivedAt` is our clock (ms), compared with when a REST page was requested. */
  seen: Record<string, { updatedAt: number; ended: boolean; receivedAt: number }>;
}

export const emptyLobby = (): LobbyState => ({ rooms: [], seen: {} });

export const noFilters = (): LobbyFilters => ({
  language: '',
  topic: '',
  q: '',
  hasSeat: false,
  level: '',
  micRequired: '',
  sort: 'newest',
});

/** Any filter that narrows the list (the sort order is not one). */
export function isFiltered(f: LobbyFilters): boolean {
  return !!(f.language || f.topic.trim() || f.q.trim() || f.hasSeat || f.level || f.micRequired);
}

/** Lowercase, accents and Vietnamese tone marks removed, đ → d, spaces collapsed: the
 * server's fold_for_search, so `tieng anh` finds `Tiếng Anh`. */
export function foldText(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/đ/g, 'd')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
}

export function hasFreeSeat(room: Room): boolean {
  return room.participantCount < room.maxParticipants;
}

export function matchesFilters(room: Room, filters: LobbyFilters): boolean {
  if (room.status !== 'LIVE') return false;
  // The server's rule: the room's language or its second language.
  if (filters.language && room.language !== filters.language && room.secondLanguage !== filters.language) {
    return false;
  }
  if (filters.level && room.level !== filters.level) return false;
  if (filters.micRequired && String(!!room.micRequired) !== filters.micRequired) return false;
  const topic = foldText(filters.topic);
  if (topic && foldText(room.topic ?? '') !== topic) return false;
  const q = foldText(filters.q);
  if (q && !foldText(`${room.title} ${room.topic ?? ''}`).includes(q)) return false;
  if (filters.hasSeat && !hasFreeSeat(room)) return false;
  return true;
}

const time = (iso: string) => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t;
};

function newestFirst(a: Room, b: Room): number {
  return time(b.createdAt) - time(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** `sort=popular`: most people first, then newest (the server's order). */
function popularFirst(a: Room, b: Room): number {
  return b.participantCount - a.participantCount || newestFirst(a, b);
}

export function roomOrder(filters: LobbyFilters): (a: Room, b: Room) => number {
  return filters.sort === 'popular' ? popularFirst : newestFirst;
}

/** Is this view of the room older than one we already applied? */
function isStale(state: LobbyState, room: Room, ending: boolean): boolean {
  const known = state.seen[room.id];
  if (!known) return false;
  const at = time(room.updatedAt);
  if (at < known.updatedAt) return true;
  // A room never comes back from ENDED; an equal timestamp is a repeat.
  if (known.ended) return !ending || at === known.updatedAt;
  return false;
}

function remember(state: LobbyState, room: Room, ended: boolean, now: number): LobbyState['seen'] {
  return { ...state.seen, [room.id]: { updatedAt: time(room.updatedAt), ended, receivedAt: now } };
}

export function applyListUpdate(
  state: LobbyState,
  update: ListUpdate,
  filters: LobbyFilters,
  now: number = Date.now(),
): LobbyState {
  const { room } = update;
  const ending = update.action === 'ended' || room.status === 'ENDED';
  if (isStale(state, room, ending)) return state;
  const seen = remember(state, room, ending, now);
  const others = state.rooms.filter((r) => r.id !== room.id);
  if (ending || !matchesFilters(room, filters)) return { rooms: others, seen };
  return { rooms: [...others, room].sort(roomOrder(filters)), seen };
}

/** A REST page: replaces the list (or adds to it for "load more"). Rooms that live updates
 * changed after the request was sent (`requestedAt`, ms) are kept as the updates left them:
 * the page cannot know about them. */
export function applyPage(
  state: LobbyState,
  page: Room[],
  filters: LobbyFilters,
  options: { append: boolean; requestedAt: number; now?: number },
): LobbyState {
  let next: LobbyState = state;
  if (!options.append) {
    const changedSince = (r: Room) => (state.seen[r.id]?.receivedAt ?? 0) >= options.requestedAt;
    next = {
      rooms: state.rooms.filter((r) => changedSince(r) && matchesFilters(r, filters)),
      seen: state.seen,
    };
  }
  for (const room of page) {
    next = applyListUpdate(next, { action: 'updated', room }, filters, options.now ?? Date.now());
  }
  return next;
}
