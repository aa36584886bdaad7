import { useEffect, useRef, useState } from 'preact/hooks';

import { api } from '../api/client';
import type { Level } from '../api/types';
import { errorMessage } from '../errors';
import { lang, languageName, t } from '../i18n';
import { navigate, roomPath } from '../router';
import { meta } from '../state/lobbyStore';
import { LEVELS, levelLabel } from './labels';
import { SecondLanguageSelect } from './Moderation';

/** The "open a room" form, in a modal dialog (focus stays inside, Esc closes). */
export function CreateRoomDialog({ onClose }: { onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const m = meta.value;
  const languages = m?.languages ?? ['en', 'vi'];
  const defaultLanguage = languages.includes(lang.value) ? lang.value : (m?.defaultLanguage ?? 'en');
  const min = m?.minParticipants ?? 2;
  const max = m?.maxParticipants ?? 12;
  const seats = Array.from({ length: max - min + 1 }, (_, i) => min + i);
  const [form, setForm] = useState({
    title: '',
    topic: '',
    language: defaultLanguage,
    level: 'any' as Level,
    maxParticipants: m?.defaultMaxParticipants ?? 6,
    secondLanguage: '',
    micRequired: false,
    noMic: false,
  });
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal?.();
  }, []);

  async function submit() {
    setBusy(true);
    setError(null);
    try {
      const room = await api.createRoom({
        title: form.title.trim(),
        topic: form.topic.trim() || null,
        language: form.language,
        level: form.level,
        maxParticipants: form.maxParticipants,
        // Only what differs from the defaults.
        ...(form.secondLanguage && form.secondLanguage !== form.language ? { secondLanguage: form.secondLanguage } : {}),
        ...(form.noMic ? { noMic: true } : form.micRequired ? { micRequired: true } : {}),
      });
      onClose();
      navigate(roomPath(room.id));
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <dialog ref={dialog} class="dialog" aria-labelledby="create-title" onClose={onClose} onCancel={onClose}>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h2 id="create-title">{t('create.title')}</h2>
        <label for="create-room-title">{t('create.roomTitle')}</label>
        <input
          id="create-room-title"
          name="title"
          required
          maxLength={100}
          autoFocus
          value={form.title}
          onInput={(e) => set({ title: e.currentTarget.value })}
        />
        <label for="create-topic">{t('create.topic')}</label>
        <input
          id="create-topic"
          name="topic"
          maxLength={100}
          placeholder={t('create.topicPlaceholder')}
          value={form.topic}
          onInput={(e) => set({ topic: e.currentTarget.value })}
        />
        <div class="form-row">
          <div>
            <label for="create-language">{t('create.language')}</label>
            <select
              id="create-language"
              name="language"
              value={form.language}
              onChange={(e) => set({ language: e.currentTarget.value })}
            >
              {languages.map((code) => (
                <option key={code} value={code}>
                  {languageName(code)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="create-level">{t('create.level')}</label>
            <select
              id="create-level"
              name="level"
              value={form.level}
              onChange={(e) => set({ level: e.currentTarget.value as Level })}
            >
              {(m?.levels ?? LEVELS).map((level) => (
                <option key={level} value={level}>
                  {levelLabel(level)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="create-seats">{t('create.seats')}</label>
            <select
              id="create-seats"
              name="maxParticipants"
              value={String(form.maxParticipants)}
              onChange={(e) => set({ maxParticipants: Number(e.currentTarget.value) })}
            >
              {seats.map((n) => (
                <option key={n} value={String(n)}>
                  {n}
                </option>
              ))}
            </select>
          </div>
        </div>
        <label for="create-second-language">{t('settings.secondLanguage')}</label>
        <SecondLanguageSelect
          id="create-second-language"
          value={form.secondLanguage}
          exclude={form.language}
          onChange={(v) => set({ secondLanguage: v })}
        />
        <div class="checkbox">
          <input
            id="create-no-mic"
            type="checkbox"
            checked={form.noMic}
            onChange={(e) => set({ noMic: e.currentTarget.checked })}
          />
          <label for="create-no-mic">{t('settings.noMic')}</label>
        </div>
        <div class="checkbox">
          <input
            id="create-mic-required"
            type="checkbox"
            checked={form.micRequired && !form.noMic}
            disabled={form.noMic}
            onChange={(e) => set({ micRequired: e.currentTarget.checked })}
          />
          <label for="create-mic-required">{t('settings.micRequired')}</label>
        </div>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="row end">
          <button type="button" class="button ghost" onClick={onClose}>
            {t('action.cancel')}
          </button>
          <button type="submit" class="button primary" disabled={busy}>
            {t('create.submit')}
          </button>
        </div>
      </form>
    </dialog>
  );
}
