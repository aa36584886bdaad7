import { useState } from 'preact/hooks';

import { api } from '../api/client';
import type { Level } from '../api/types';
import { lang, t } from '../i18n';
import { navigate, roomPath } from '../router';
import { meta } from '../state/lobbyStore';
import { FormDialog, LanguageField, LevelField, MicFields, SeatsField, SecondLanguageField, TitleTopicFields } from './RoomFields';

/** The "open a room" form, in a modal dialog (focus stays inside, Esc closes). */
export function CreateRoomDialog({ onClose }: { onClose: () => void }) {
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
  const fields = { prefix: 'create', form, set } as const;

  async function submit() {
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
  }

  return (
    <FormDialog titleId="create-title" title={t('create.title')} submitLabel="create.submit" submit={submit} onClose={onClose}>
      <TitleTopicFields {...fields} titleId="create-room-title" create />
      <div class="form-row">
        <LanguageField {...fields} />
        <LevelField {...fields} />
        <SeatsField {...fields} seats={seats} />
      </div>
      <SecondLanguageField {...fields} />
      <MicFields {...fields} />
    </FormDialog>
  );
}
