import { useLayoutEffect, useRef, useState } from 'preact/hooks';

import type { ChatMessage, Role } from '../api/types';
import { errorMessage } from '../errors';
import { formatTime, t } from '../i18n';
import { blockedIds } from '../state/blocks';
import { canDelete, visibleMessages } from '../state/chat';
import { isModerator } from '../state/room';
import {
  chatLoading,
  currentRoom,
  deleteMessage,
  loadOlderMessages,
  messages,
  olderCursor,
  sendMessage,
  slowModeWait,
} from '../state/roomStore';
import { session } from '../state/session';

const MAX_LENGTH = 1000;

export function ChatPanel() {
  const me = session.value?.user.id;
  const list = useRef<HTMLOListElement>(null);
  const stickToBottom = useRef(true);
  const heightBeforeOlder = useRef<number | null>(null);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  // A blocked person's lines are not shown to the blocker.
  const all = visibleMessages(messages.value, blockedIds.value);
  const room = currentRoom.value;
  const hostId = room?.host.id;
  const roles = new Map<string, Role>(room?.participants.map((p) => [p.userId, p.role]) ?? []);
  const moderator = !!room && isModerator(room, me);
  const slowSecs = room?.slowModeSecs ?? 0;
  const wait = slowModeWait.value;

  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    if (heightBeforeOlder.current !== null) {
      // Older messages went in above: keep what the reader was looking at in place.
      el.scrollTop += el.scrollHeight - heightBeforeOlder.current;
      heightBeforeOlder.current = null;
    } else if (stickToBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [all]);

  const loadOlder = () => {
    if (!olderCursor.value || chatLoading.value) return;
    heightBeforeOlder.current = list.current?.scrollHeight ?? null;
    void loadOlderMessages();
  };

  async function send() {
    const text = draft.trim();
    if (!text || sending) return;
    setSending(true);
    setError(null);
    try {
      await sendMessage(text);
      setDraft('');
      stickToBottom.current = true;
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setSending(false);
    }
  }

  return (
    <section class="chat" aria-labelledby="chat-title">
      <h2 id="chat-title">{t('chat.title')}</h2>
      {slowSecs > 0 && (
        <p class="muted small" data-testid="chat-slow-mode">
          {t('room.slowMode', { secs: slowSecs })}
        </p>
      )}
      <ol
        class="chat-log"
        ref={list}
        role="log"
        aria-live="polite"
        aria-label={t('chat.log')}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          if (el.scrollTop < 30) loadOlder();
        }}
      >
        {olderCursor.value && (
          <li class="chat-older">
            <button type="button" class="button small ghost" disabled={chatLoading.value} onClick={loadOlder}>
              {chatLoading.value ? t('chat.loading') : t('chat.loadOlder')}
            </button>
          </li>
        )}
        {all.length === 0 && <li class="chat-empty muted">{t('chat.empty')}</li>}
        {all.map((m) => (
          <ChatMessageItem
            key={m.id}
            message={m}
            own={m.sender.id === me}
            host={m.sender.id === hostId}
            cohost={roles.get(m.sender.id) === 'COHOST'}
            onDelete={
              canDelete(m, me, moderator)
                ? () => deleteMessage(m.id).catch((err) => setError(errorMessage(err)))
                : undefined
            }
          />
        ))}
      </ol>
      <form
        class="chat-form"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label for="chat-input" class="visually-hidden">
          {t('chat.inputLabel')}
        </label>
        <textarea
          id="chat-input"
          rows={1}
          maxLength={MAX_LENGTH}
          value={draft}
          placeholder={t('chat.placeholder')}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            }
          }}
        />
        <button type="submit" class="button primary" disabled={sending || !draft.trim()}>
          {t('chat.send')}
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert" data-testid="chat-error" data-slow-wait={wait ? String(wait.secs) : undefined}>
          {error}
        </p>
      )}
    </section>
  );
}

/** One message. The text is a text node (Preact escapes strings): chat is never HTML,
 * links stay plain text. The host's messages carry the host badge, so a stranger who takes
 * the host's name still cannot pass for the host. */
export function ChatMessageItem(props: {
  message: ChatMessage;
  own: boolean;
  host?: boolean;
  cohost?: boolean;
  /** Shown to hosts, co-hosts and the author. */
  onDelete?: () => void;
}) {
  const { message, own, host = false, cohost = false } = props;
  return (
    <li class={`chat-message ${own ? 'own' : ''}`} data-message-id={message.id} data-own={own ? 'true' : 'false'}>
      <div class="chat-meta">
        <span class="chat-sender">{own ? t('chat.you') : message.sender.displayName}</span>
        {host && <span class="badge">{t('room.host')}</span>}
        {!host && cohost && <span class="badge">{t('room.cohost')}</span>}
        <time dateTime={message.createdAt}>{formatTime(message.createdAt)}</time>
        {props.onDelete && (
          <button
            type="button"
            class="button small ghost chat-delete"
            data-testid="chat-delete"
            aria-label={t('chat.deleteLabel', { name: own ? t('chat.you') : message.sender.displayName })}
            onClick={props.onDelete}
          >
            {t('chat.delete')}
          </button>
        )}
      </div>
      <p class="chat-text">{message.message}</p>
    </li>
  );
}
