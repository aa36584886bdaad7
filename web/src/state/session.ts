// Who is signed in: the token and user, kept in localStorage across reloads. A token the
// server refuses (INVALID_TOKEN / TOKEN_EXPIRED) signs out cleanly.
import { signal } from '@preact/signals';

import type { Session } from '../api/types';

const STORAGE_KEY = 'talkconnect.session';

function load(): Session | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Session;
    return typeof parsed?.token === 'string' && parsed.user?.id ? parsed : null;
  } catch {
    return null;
  }
}

export const session = signal<Session | null>(load());

export function saveSession(next: Session | null): void {
  session.value = next;
  try {
    if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Private mode: signed in for this page only.
  }
}

export const currentUserId = (): string | undefined => session.value?.user.id;
