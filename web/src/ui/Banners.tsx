import { useEffect, useState } from 'preact/hooks';

import { t } from '../i18n';
import { connection } from '../realtime/socket';
import { clearNotice, notice } from '../state/notice';

/** Shows that live updates are (re)connecting; a first connect must take a moment first. */
export function ConnectionBanner() {
  const state = connection.value;
  const [slowFirstConnect, setSlow] = useState(false);
  const [justReconnected, setJustReconnected] = useState(false);
  const [wasDown, setWasDown] = useState(false);

  useEffect(() => {
    document.documentElement.dataset.realtime = state;
    if (state === 'connecting') {
      const timer = setTimeout(() => setSlow(true), 2000);
      return () => clearTimeout(timer);
    }
    setSlow(false);
    if (state === 'reconnecting') setWasDown(true);
    if (state === 'connected' && wasDown) {
      setWasDown(false);
      setJustReconnected(true);
      const timer = setTimeout(() => setJustReconnected(false), 2500);
      return () => clearTimeout(timer);
    }
    return undefined;
  }, [state]);

  let text: string | null = null;
  let kind = 'warning';
  if (state === 'reconnecting') text = t('conn.reconnecting');
  else if (state === 'connecting' && slowFirstConnect) text = t('conn.connecting');
  else if (state === 'connected' && justReconnected) {
    text = t('conn.reconnected');
    kind = 'ok';
  }
  return (
    <div class="banner-slot" role="status" aria-live="polite">
      {text && (
        <div class={`banner ${kind}`} data-testid="connection-banner">
          {kind === 'warning' && <span class="spinner" aria-hidden="true" />}
          {text}
        </div>
      )}
    </div>
  );
}

export function NoticeBar() {
  const current = notice.value;
  useEffect(() => {
    if (!current) return undefined;
    const timer = setTimeout(() => {
      if (notice.value?.id === current.id) clearNotice();
    }, 8000);
    return () => clearTimeout(timer);
  }, [current?.id]);
  return (
    <div class="notice-slot" role={current?.kind === 'error' ? 'alert' : 'status'} aria-live="polite">
      {current && (
        <div class={`notice ${current.kind}`} data-testid="notice">
          <span>{current.key ? t(current.key, current.params) : ''}</span>
          <button type="button" class="icon-button" aria-label={t('action.dismiss')} onClick={clearNotice}>
            ×
          </button>
        </div>
      )}
    </div>
  );
}
