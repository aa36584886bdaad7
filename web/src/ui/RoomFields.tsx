// What the "open a room" dialog (CreateRoom.tsx) and the live room settings (Moderation.tsx)
// share: the modal form around them, the labelled room fields, and the copy-a-link helper.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import type { Level } from '../api/types';
import { errorMessage } from '../errors';
import { languageName, type MessageKey, t } from '../i18n';
import { meta } from '../state/lobbyStore';
import { LEVELS, levelLabel } from './labels';

/**
 * A form in a modal native <dialog> (focus stays inside, Esc closes): heading, fields, the
 * error of the last try, Cancel and the submit button. `submit` runs with the button
 * disabled; when it throws, its message shows and the form stays open.
 */
export function FormDialog(props: {
  titleId: string;
  title: string;
  testId?: string;
  submitLabel: MessageKey;
  submitTestId?: string;
  submit: () => Promise<void>;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal?.();
  }, []);

  async function run() {
    setBusy(true);
    setError(null);
    try {
      await props.submit();
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <dialog
      ref={dialog}
      class="dialog"
      aria-labelledby={props.titleId}
      data-testid={props.testId}
      onClose={props.onClose}
      onCancel={props.onClose}
    >
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <h2 id={props.titleId}>{props.title}</h2>
        {props.children}
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="row end">
          <button type="button" class="button ghost" onClick={props.onClose}>
            {t('action.cancel')}
          </button>
          <button type="submit" class="button primary" disabled={busy} data-testid={props.submitTestId}>
            {t(props.submitLabel)}
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** The room fields both forms edit. */
export interface RoomForm {
  title: string;
  topic: string;
  language: string;
  secondLanguage: string;
  level: Level;
  maxParticipants: number;
  noMic: boolean;
  micRequired: boolean;
}

/** Props of one field: which form (`create` or `settings`, the ids' prefix), its values, its setter. */
interface FieldProps {
  prefix: 'create' | 'settings';
  form: RoomForm;
  set: (patch: Partial<RoomForm>) => void;
}

/** A labelled <select> in its own form-row cell. */
export function SelectField<V extends string | number>(props: {
  id: string;
  name: string;
  label: MessageKey;
  value: V;
  options: readonly V[];
  text: (v: V) => string;
  onChange: (value: string) => void;
}) {
  return (
    <div>
      <label for={props.id}>{t(props.label)}</label>
      <select id={props.id} name={props.name} value={String(props.value)} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {props.options.map((o) => (
          <option key={o} value={String(o)}>
            {props.text(o)}
          </option>
        ))}
      </select>
    </div>
  );
}

/** Title (its id differs between the forms) and topic. */
export function TitleTopicFields({ prefix, form, set, titleId, create }: FieldProps & { titleId: string; create?: boolean }) {
  return (
    <>
      <label for={titleId}>{t('create.roomTitle')}</label>
      <input
        id={titleId}
        name="title"
        required
        maxLength={100}
        autoFocus={create}
        value={form.title}
        onInput={(e) => set({ title: e.currentTarget.value })}
      />
      <label for={`${prefix}-topic`}>{t('create.topic')}</label>
      <input
        id={`${prefix}-topic`}
        name="topic"
        maxLength={100}
        placeholder={create ? t('create.topicPlaceholder') : undefined}
        value={form.topic}
        onInput={(e) => set({ topic: e.currentTarget.value })}
      />
    </>
  );
}

export function LanguageField({ prefix, form, set }: FieldProps) {
  return (
    <SelectField
      id={`${prefix}-language`}
      name="language"
      label="create.language"
      value={form.language}
      options={meta.value?.languages ?? ['en', 'vi']}
      text={languageName}
      onChange={(language) => set({ language })}
    />
  );
}

export function LevelField({ prefix, form, set }: FieldProps) {
  return (
    <SelectField
      id={`${prefix}-level`}
      name="level"
      label="create.level"
      value={form.level}
      options={meta.value?.levels ?? LEVELS}
      text={levelLabel}
      onChange={(level) => set({ level: level as Level })}
    />
  );
}

/** Seats, from the choices `seats` the form allows. */
export function SeatsField({ prefix, form, set, seats }: FieldProps & { seats: number[] }) {
  return (
    <SelectField
      id={`${prefix}-seats`}
      name="maxParticipants"
      label="create.seats"
      value={form.maxParticipants}
      options={seats}
      text={String}
      onChange={(n) => set({ maxParticipants: Number(n) })}
    />
  );
}

/** The optional second language: label and select, never the room's main language. */
export function SecondLanguageField({ prefix, form, set }: FieldProps) {
  const id = `${prefix}-second-language`;
  return (
    <>
      <label for={id}>{t('settings.secondLanguage')}</label>
      <select id={id} name="secondLanguage" value={form.secondLanguage} onChange={(e) => set({ secondLanguage: e.currentTarget.value })}>
        <option value="">{t('settings.none')}</option>
        {(meta.value?.languages ?? ['en', 'vi'])
          .filter((code) => code !== form.language)
          .map((code) => (
            <option key={code} value={code}>
              {languageName(code)}
            </option>
          ))}
      </select>
    </>
  );
}

/** The mic rules: "no mic" room, or "mic required" (off and disabled while "no mic" is on). */
export function MicFields({ prefix, form, set }: FieldProps) {
  return (
    <>
      <div class="checkbox">
        <input id={`${prefix}-no-mic`} type="checkbox" checked={form.noMic} onChange={(e) => set({ noMic: e.currentTarget.checked })} />
        <label for={`${prefix}-no-mic`}>{t('settings.noMic')}</label>
      </div>
      <div class="checkbox">
        <input
          id={`${prefix}-mic-required`}
          type="checkbox"
          checked={form.micRequired && !form.noMic}
          disabled={form.noMic}
          onChange={(e) => set({ micRequired: e.currentTarget.checked })}
        />
        <label for={`${prefix}-mic-required`}>{t('settings.micRequired')}</label>
      </div>
    </>
  );
}

/**
 * Copies `text` to the clipboard; without clipboard permission (http, old browser) shows it
 * in a prompt for a manual copy.
 */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    window.prompt(t('room.copyPrompt'), text);
  }
}

/** A "just copied" flag: `flash()` turns it on for two seconds. */
export function useCopiedFlag(): [boolean, () => void] {
  const [copied, setCopied] = useState(false);
  const flash = () => {
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  return [copied, flash];
}
