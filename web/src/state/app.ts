// Wires the pieces at start: the REST client reads the session, the socket follows the
// session's token, and a refused token signs out cleanly everywhere.
import { effect } from '@preact/signals';

import { api, configureApi } from '../api/client';
import type { Session } from '../api/types';
import { startMedia } from '../media/mediaStore';
import { startRealtime } from '../realtime/socket';
import { showNotice } from './notice';
import { dropRoom, leaveRoom } from './roomStore';
import { saveSession, session } from './session';

/** The token was refused (expired, or the server's secret changed): sign out. */
export function expireSession(): void {
  if (!session.value) return;
  dropRoom();
  saveSession(null);
  showNotice('info', 'notice.sessionExpired');
}

export function signIn(next: Session): void {
  saveSession(next);
}

export async function signOut(): Promise<void> {
  await leaveRoom({ navigateHome: true });
  saveSession(null);
}

export function startApp(): void {
  configureApi({ token: () => session.value?.token ?? null, onSessionInvalid: expireSession });
  startMedia();
  let connectedWith: string | null | undefined;
  effect(() => {
    const token = session.value?.token ?? null;
    if (token === connectedWith) return;
    connectedWith = token;
    startRealtime(token, expireSession);
  });
  // Check a stored token once; a refused one signs out through configureApi's hook.
  if (session.value) {
    api
      .me()
      .then((user) => {
        if (session.value && session.value.user.id === user.id) saveSession({ ...session.value, user });
      })
      .catch(() => {});
  }
}
