import { useEffect, useRef, useState } from 'preact/hooks';

import type { Level, LobbyFilters, Room } from '../api/types';
import { errorKey } from '../errors';
import { languageName, t } from '../i18n';
import { navigate, roomPath } from '../router';
import { connection } from '../realtime/socket';
import { hasFreeSeat, isFiltered, noFilters } from '../state/lobby';
import {
  filters,
  loadMeta,
  loadMoreRooms,
  lobby,
  lobbyError,
  lobbyLoading,
  meta,
  nextCursor,
  refreshLobby,
  setFilters,
} from '../state/lobbyStore';
import { kickedFrom } from '../state/roomStore';
import { session } from '../state/session';
import { CreateRoomDialog } from './CreateRoom';
import { Icon } from './Icon';
import { LEVELS, levelLabel } from './labels';
import { Avatar } from './Avatar';
import { SignIn } from './SignIn';

/** While live updates are down, re-read the lobby this often. */
const OFFLINE_REFRESH_MS = 15000;

export function Lobby() {
  const [creating, setCreating] = useState(false);
  const searchTimer = useRef<ReturnType<typeof setTimeout>>();
  const signedIn = !!session.value;

  useEffect(() => {
    void loadMeta();
    void refreshLobby();
  }, []);

  useEffect(() => {
    if (connection.value === 'connected') return undefined;
    const timer = setInterval(() => void refreshLobby(), OFFLINE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [connection.value]);

  const change = (next: Parameters<typeof setFilters>[0], debounce = false) => {
    setFilters(next);
    clearTimeout(searchTimer.current);
    if (debounce) searchTimer.current = setTimeout(() => void refreshLobby(), 300);
    else void refreshLobby();
  };

  const f = filters.value;
  const rooms = lobby.value.rooms;
  const filtered = isFiltered(f);
  const topics = [...new Set(rooms.map((r) => r.topic).filter((x): x is string => !!x))].sort();

  return (
    <div class="lobby">
      {!signedIn && <SignIn />}
      <section aria-labelledby="lobby-title">
        <div class="lobby-head">
          <h1 id="lobby-title">
            {t('lobby.title')} <span class="count">{rooms.length}</span>
          </h1>
          <button
            type="button"
            class="button primary"
            onClick={() => (signedIn ? setCreating(true) : document.getElementById('guest-name')?.focus())}
          >
            {t('lobby.create')}
          </button>
        </div>
        <form class="filters" role="search" aria-label={t('lobby.filters')} onSubmit={(e) => e.preventDefault()}>
          <div class="filter">
            <label for="filter-q">{t('lobby.search')}</label>
            <input
              id="filter-q"
              type="search"
              value={f.q}
              maxLength={100}
              placeholder={t('lobby.searchPlaceholder')}
              onInput={(e) => change({ q: e.currentTarget.value }, true)}
            />
          </div>
          <div class="filter">
            <label for="filter-language">{t('lobby.language')}</label>
            <select id="filter-language" value={f.language} onChange={(e) => change({ language: e.currentTarget.value })}>
              <option value="">{t('lobby.allLanguages')}</option>
              {(meta.value?.languages ?? []).map((code) => (
                <option key={code} value={code}>
                  {languageName(code)}
                </option>
              ))}
            </select>
          </div>
          <div class="filter">
            <label for="filter-topic">{t('lobby.topic')}</label>
            <input
              id="filter-topic"
              value={f.topic}
              maxLength={100}
              list="topic-options"
              placeholder={t('lobby.anyTopic')}
              onInput={(e) => change({ topic: e.currentTarget.value }, true)}
            />
            <datalist id="topic-options">
              {topics.map((topic) => (
                <option key={topic} value={topic} />
              ))}
            </datalist>
          </div>
          <div class="filter">
            <label for="filter-level">{t('lobby.level')}</label>
            <select
              id="filter-level"
              data-testid="filter-level"
              value={f.level}
              onChange={(e) => change({ level: e.currentTarget.value as Level | '' })}
            >
              <option value="">{t('lobby.anyLevel')}</option>
              {(meta.value?.levels ?? LEVELS).map((level) => (
                <option key={level} value={level}>
                  {levelLabel(level)}
                </option>
              ))}
            </select>
          </div>
          <div class="filter">
            <label for="filter-mic">{t('lobby.mic')}</label>
            <select
              id="filter-mic"
              data-testid="filter-mic"
              value={f.micRequired}
              onChange={(e) => change({ micRequired: e.currentTarget.value as LobbyFilters['micRequired'] })}
            >
              <option value="">{t('lobby.micAny')}</option>
              <option value="true">{t('lobby.micYes')}</option>
              <option value="false">{t('lobby.micNo')}</option>
            </select>
          </div>
          <div class="filter">
            <label for="filter-sort">{t('lobby.sort')}</label>
            <select
              id="filter-sort"
              data-testid="filter-sort"
              value={f.sort}
              onChange={(e) => change({ sort: e.currentTarget.value as LobbyFilters['sort'] })}
            >
              <option value="newest">{t('lobby.sortNewest')}</option>
              <option value="popular">{t('lobby.sortPopular')}</option>
            </select>
          </div>
          <div class="filter checkbox">
            <input
              id="filter-seat"
              type="checkbox"
              checked={f.hasSeat}
              onChange={(e) => change({ hasSeat: e.currentTarget.checked })}
            />
            <label for="filter-seat">{t('lobby.hasSeat')}</label>
          </div>
        </form>

        {lobbyError.value && (
          <p class="form-error" role="alert">
            {t(errorKey(lobbyError.value))}{' '}
            <button type="button" class="button small" onClick={() => void refreshLobby()}>
              {t('action.retry')}
            </button>
          </p>
        )}

        {rooms.length === 0 && !lobbyLoading.value && !lobbyError.value && (
          <div class="empty" data-testid="lobby-empty">
            <p class="empty-title">{filtered ? t('lobby.emptyFiltered') : t('lobby.empty')}</p>
            <p class="muted">{t('lobby.emptyInvite')}</p>
            <div class="row">
              {filtered && (
                <button
                  type="button"
                  class="button"
                  onClick={() => change({ ...noFilters(), sort: f.sort })}
                >
                  {t('lobby.clearFilters')}
                </button>
              )}
              <button
                type="button"
                class="button primary"
                onClick={() => (signedIn ? setCreating(true) : document.getElementById('guest-name')?.focus())}
              >
                {t('lobby.createFirst')}
              </button>
            </div>
          </div>
        )}

        <ul class="room-grid" aria-busy={lobbyLoading.value}>
          {rooms.map((room) => (
            <RoomCard key={room.id} room={room} />
          ))}
        </ul>
        {nextCursor.value && (
          <div class="row center">
            <button type="button" class="button" onClick={() => void loadMoreRooms()}>
              {t('lobby.loadMore')}
            </button>
          </div>
        )}
      </section>
      {creating && <CreateRoomDialog onClose={() => setCreating(false)} />}
    </div>
  );
}

function RoomCard({ room }: { room: Room }) {
  const free = hasFreeSeat(room);
  const kicked = kickedFrom.value.has(room.id);
  const titleId = `room-title-${room.id}`;
  return (
    <li class="room-card" data-room-id={room.id} aria-labelledby={titleId}>
      <div class="room-card-head">
        <h2 id={titleId} class="room-title">
          {room.isLocked && (
            <span role="img" aria-label={t('lobby.locked')} title={t('lobby.locked')} data-testid="room-card-locked">
              <Icon name="lock" />{' '}
            </span>
          )}
          {room.title}
        </h2>
        <span
          class={`seats ${free ? '' : 'full'}`}
          aria-label={t('room.seatsLabel', { taken: room.participantCount, limit: room.maxParticipants })}
        >
          {room.participantCount}/{room.maxParticipants}
        </span>
      </div>
      {room.topic && <p class="room-topic">{room.topic}</p>}
      <p class="chips">
        <span class="chip">{languageName(room.language)}</span>
        {room.secondLanguage && <span class="chip">{languageName(room.secondLanguage)}</span>}
        <span class="chip">{levelLabel(room.level)}</span>
        {room.micRequired && <span class="chip">{t('room.micRequired')}</span>}
        {room.noMic && <span class="chip">{t('settings.noMic')}</span>}
      </p>
      <p class="room-host muted">{t('room.hostedBy', { name: room.host.displayName })}</p>
      <ul class="members" aria-label={t('room.whoIsInside')}>
        {room.members.map((m) => (
          <li key={m.id} title={m.displayName}>
            <Avatar name={m.displayName} small />
            <span class="member-name">{m.displayName}</span>
          </li>
        ))}
      </ul>
      <button
        type="button"
        class="button primary join"
        disabled={!free || kicked}
        aria-label={
          kicked
            ? t('lobby.removedFrom', { title: room.title })
            : free
              ? t('lobby.joinRoom', { title: room.title })
              : t('lobby.roomFull', { title: room.title })
        }
        onClick={() => navigate(roomPath(room.id))}
      >
        {kicked ? t('lobby.removed') : free ? t('lobby.join') : t('lobby.full')}
      </button>
    </li>
  );
}
