// Wires the pieces at start: the REST client reads the session, the socket follows the
// session's token, and a refused token signs out cleanly everywhere.
import { effect } from '@preact/signals';

import { api, configureApi } from '../api/client';
import type { Session } from '../api/types';
import { formatDateTime } from '../i18n';
import { startMedia } from '../media/mediaStore';
import { navigate, route } from '../router';
import { ServerEvent, type SessionBanned } from '../realtime/events';
import { onServer, startRealtime } from '../realtime/socket';
import { startBlocks } from './blocks';
import { showNotice } from './notice';
import { dropRoom, leaveRoom } from './roomStore';
import { saveSession, session } from './session';

/** The token was refused (expired, the server's secret changed, or the account banned):
 * sign out; the socket then reconnects anonymously. */
export function expireSession(code?: string): void {
  if (!session.value) return;
  if (code === 'BANNED') return banned({ reason: null, until: null });
  dropRoom();
  saveSession(null);
  showNotice('info', 'notice.sessionExpired');
}

/** `session:banned` (or a BANNED answer): signed out at once, told why and until when. */
export function banned(p: SessionBanned): void {
  dropRoom();
  saveSession(null);
  if (route.value.name !== 'lobby') navigate('/');
  const reason = p.reason?.trim();
  if (p.until) {
    const until = formatDateTime(p.until);
    if (reason) showNotice('error', 'notice.bannedUntilReason', { until, reason });
    else showNotice('error', 'notice.bannedUntil', { until });
  } else if (reason) showNotice('error', 'notice.bannedReason', { reason });
  else showNotice('error', 'notice.banned');
}

export function signIn(next: Session): void {
  saveSession(next);
  refreshMe();
}

/** Re-reads the user (`isAdmin` for the header's admin link comes from GET /api/auth/me). */
function refreshMe(): void {
  api
    .me()
    .then((user) => {
      if (session.value && session.value.user.id === user.id) saveSession({ ...session.value, user });
    })
    .catch(() => {});
}

export async function signOut(): Promise<void> {
  await leaveRoom({ navigateHome: true });
  saveSession(null);
}

export function startApp(): void {
  configureApi({ token: () => session.value?.token ?? null, onSessionInvalid: expireSession });
  startMedia();
  startBlocks();
  onServer(ServerEvent.sessionBanned, banned);
  let connectedWith: string | null | undefined;
  effect(() => {
    const token = session.value?.token ?? null;
    if (token === connectedWith) return;
    connectedWith = token;
    startRealtime(token, expireSession);
  });
  // Check a stored token once; a refused one signs out through configureApi's hook.
  if (session.value) refreshMe();
}
