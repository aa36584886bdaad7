// One message at a time at the top of the page: "You were removed from the room", errors…
import { signal } from '@preact/signals';

import type { MessageKey } from '../i18n';

export interface Notice {
  kind: 'info' | 'error';
  /** A translation key (translated when shown, so a language switch applies) or raw text. */
  key?: MessageKey;
  params?: Record<string, string | number>;
  id: number;
}

export const notice = signal<Notice | null>(null);
let counter = 0;

export function showNotice(kind: Notice['kind'], key: MessageKey, params?: Notice['params']): void {
  notice.value = { kind, key, params, id: ++counter };
}

export function clearNotice(): void {
  notice.value = null;
}
