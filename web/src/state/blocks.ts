// People this user blocked (docs/MODERATION.md "Blocks"): loaded on sign-in, changed from
// the person menu. The page hides their chat lines, tiles and audio; the server never seats
// the two together.
import { computed, effect, signal } from '@preact/signals';

import { api } from '../api/client';
import type { UserPublic } from '../api/types';
import { session } from './session';

/** Blocked users by id. */
export const blocks = signal<ReadonlyMap<string, UserPublic>>(new Map());
export const blockedIds = computed<ReadonlySet<string>>(() => new Set(blocks.value.keys()));

export const isBlocked = (userId: string): boolean => blocks.value.has(userId);

export async function loadBlocks(): Promise<void> {
  try {
    const answer = await api.blocks();
    blocks.value = new Map(answer.blocks.map((b) => [b.user.id, b.user]));
  } catch {
    // Not fatal: the list stays as it was, the server still enforces blocks on joins.
  }
}

export async function block(user: UserPublic): Promise<void> {
  await api.block(user.id);
  blocks.value = new Map([...blocks.value, [user.id, user]]);
}

export async function unblock(userId: string): Promise<void> {
  await api.unblock(userId);
  const next = new Map(blocks.value);
  next.delete(userId);
  blocks.value = next;
}

/** Follows the session: a new user loads their list, signing out forgets it. */
export function startBlocks(): void {
  let loadedFor: string | null = null;
  effect(() => {
    const userId = session.value?.user.id ?? null;
    if (userId === loadedFor) return;
    loadedFor = userId;
    blocks.value = new Map();
    if (userId) void loadBlocks();
  });
}
