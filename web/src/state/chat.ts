// Chat messages of the room, oldest first, without duplicates: history pages (newest first
// from the API) and live messages, including our own coming back from the broadcast.
import type { ChatMessage } from '../api/types';

export function mergeMessages(current: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  if (incoming.length === 0) return current;
  const byId = new Map(current.map((m) => [m.id, m]));
  for (const m of incoming) byId.set(m.id, m);
  return [...byId.values()].sort(
    (a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** `chat:deleted` (or our own delete): the message is gone. */
export function removeMessage(current: ChatMessage[], messageId: string): ChatMessage[] {
  return current.some((m) => m.id === messageId) ? current.filter((m) => m.id !== messageId) : current;
}

/** What the blocker sees: nothing from the people they blocked. */
export function visibleMessages(current: ChatMessage[], blocked: ReadonlySet<string>): ChatMessage[] {
  return blocked.size === 0 ? current : current.filter((m) => !blocked.has(m.sender.id));
}

/** May this person delete this message? Hosts and co-hosts any, everyone their own. */
export function canDelete(message: ChatMessage, me: string | undefined, moderator: boolean): boolean {
  return !!me && (moderator || message.sender.id === me);
}
