// The lobby as the page sees it: REST pages on entry and on filter changes, then live
// `room:list-update` events; a full refresh after every reconnect to catch up.
import { signal } from '@preact/signals';

import { api } from '../api/client';
import type { LobbyFilters, Meta } from '../api/types';
import { errorCode } from '../errors';
import { ServerEvent } from '../realtime/events';
import { onConnected, onServer } from '../realtime/socket';
import {
  applyListUpdate,
  applyPage,
  emptyLobby,
  matchesFilters,
  noFilters,
  roomOrder,
  type LobbyState,
} from './lobby';

export const lobby = signal<LobbyState>(emptyLobby());
export const filters = signal<LobbyFilters>(noFilters());
export const lobbyLoading = signal(false);
/** Error code of the last failed load, or null. */
export const lobbyError = signal<string | null>(null);
export const nextCursor = signal<string | null>(null);
export const meta = signal<Meta | null>(null);

let generation = 0;
let loadedOnce = false;

export async function refreshLobby(): Promise<void> {
  const gen = ++generation;
  const requestedAt = Date.now();
  lobbyLoading.value = true;
  try {
    const page = await api.rooms(filters.value);
    if (gen !== generation) return;
    lobby.value = applyPage(lobby.value, page.rooms, filters.value, { append: false, requestedAt });
    nextCursor.value = page.nextCursor;
    lobbyError.value = null;
    loadedOnce = true;
  } catch (err) {
    if (gen === generation) lobbyError.value = errorCode(err);
  } finally {
    if (gen === generation) lobbyLoading.value = false;
  }
}

export async function loadMoreRooms(): Promise<void> {
  const cursor = nextCursor.value;
  if (!cursor) return;
  const gen = generation;
  try {
    const page = await api.rooms(filters.value, cursor);
    if (gen !== generation) return;
    lobby.value = applyPage(lobby.value, page.rooms, filters.value, { append: true, requestedAt: Date.now() });
    nextCursor.value = page.nextCursor;
  } catch (err) {
    lobbyError.value = errorCode(err);
  }
}

export function setFilters(next: Partial<LobbyFilters>): void {
  filters.value = { ...filters.value, ...next };
  // Narrow (and re-order) what is shown at once; the REST answer then brings what the server knows.
  lobby.value = {
    ...lobby.value,
    rooms: lobby.value.rooms.filter((r) => matchesFilters(r, filters.value)).sort(roomOrder(filters.value)),
  };
}

export async function loadMeta(): Promise<Meta | null> {
  if (meta.value) return meta.value;
  try {
    meta.value = await api.meta();
  } catch {
    // Forms fall back to defaults; the lobby still works.
  }
  return meta.value;
}

onServer(ServerEvent.listUpdate, (update) => {
  lobby.value = applyListUpdate(lobby.value, update, filters.value);
});

onConnected(() => {
  // Updates sent while we were away are lost: ask again.
  if (loadedOnce) void refreshLobby();
});
