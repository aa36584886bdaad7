// A tiny history router: the lobby at `/`, a room at `/r/<roomId>`, the connection checks at
// `/doctor`, the instance admins' page at `/admin`.
import { signal } from '@preact/signals';

export type Route =
  | { name: 'lobby' }
  | { name: 'room'; roomId: string }
  | { name: 'doctor' }
  | { name: 'admin' }
  | { name: 'notFound' };

export const DOCTOR_PATH = '/doctor';

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { name: 'lobby' };
  if (pathname === DOCTOR_PATH || pathname === `${DOCTOR_PATH}/`) return { name: 'doctor' };
  if (pathname === '/admin' || pathname === '/admin/') return { name: 'admin' };
  const room = /^\/r\/([^/]+)\/?$/.exec(pathname);
  if (room) return { name: 'room', roomId: decodeURIComponent(room[1]) };
  return { name: 'notFound' };
}

export const route = signal<Route>(parseRoute(window.location.pathname));

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  route.value = parseRoute(window.location.pathname);
}

export function roomPath(roomId: string): string {
  return `/r/${encodeURIComponent(roomId)}`;
}

export function roomLink(roomId: string): string {
  return `${window.location.origin}${roomPath(roomId)}`;
}

/** The invite link of a locked room: `/r/<roomId>?key=<roomKey>` (docs/MODERATION.md). */
export function inviteLink(roomId: string, roomKey: string): string {
  return `${roomLink(roomId)}?key=${encodeURIComponent(roomKey)}`;
}

/** The room key of the address (`?key=…`), sent with the join; null without one. */
export function roomKeyFromUrl(search: string = window.location.search): string | null {
  const key = new URLSearchParams(search).get('key');
  return key && key.trim() ? key.trim() : null;
}

export const ADMIN_PATH = '/admin';

window.addEventListener('popstate', () => {
  route.value = parseRoute(window.location.pathname);
});
