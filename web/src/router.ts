// A tiny history router: the lobby at `/`, a room at `/r/<roomId>`, the connection checks at
// `/doctor`.
import { signal } from '@preact/signals';

export type Route =
  | { name: 'lobby' }
  | { name: 'room'; roomId: string }
  | { name: 'doctor' }
  | { name: 'notFound' };

export const DOCTOR_PATH = '/doctor';

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { name: 'lobby' };
  if (pathname === DOCTOR_PATH || pathname === `${DOCTOR_PATH}/`) return { name: 'doctor' };
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

window.addEventListener('popstate', () => {
  route.value = parseRoute(window.location.pathname);
});
