// The room's moderation UI (docs/MODERATION.md): the person menu, the hosts' bar (mute
// everyone, lock, invite link, settings), the settings dialog and the report dialog.
import { useEffect, useRef, useState } from 'preact/hooks';

import { REPORT_REASONS, type Level, type Participant, type ReportReason, type RoomDetail } from '../api/types';
import { errorMessage } from '../errors';
import { languageName, t, type MessageKey } from '../i18n';
import { inviteLink } from '../router';
import { block, blocks, unblock } from '../state/blocks';
import { meta } from '../state/lobbyStore';
import { showNotice } from '../state/notice';
import { menuFor, toUser } from '../state/room';
import {
  fetchRoomKey,
  hardMute,
  kick,
  muteAll,
  report,
  setCohost,
  setLocked,
  transferHost,
  updateSettings,
} from '../state/roomStore';
import { Icon } from './Icon';
import { LEVELS, levelLabel } from './labels';

type Act = (action: () => Promise<void>) => void;

/** The "⋯" menu of one person in the people list: what the viewer may do to them. */
export function PersonMenu(props: {
  p: Participant;
  myRole: Participant['role'] | undefined;
  isMe: boolean;
  live: boolean;
  act: Act;
  onReport: () => void;
}) {
  const { p, myRole, isMe, live, act } = props;
  const [open, setOpen] = useState(false);
  const [confirm, setConfirm] = useState<'kick' | 'transfer' | null>(null);
  const root = useRef<HTMLSpanElement>(null);
  useEffect(() => {
    if (!open) return undefined;
    // A click elsewhere or Escape closes the menu.
    const onClick = (e: MouseEvent) => {
      if (!root.current?.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('click', onClick);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('click', onClick);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);
  const can = menuFor(myRole, p, isMe);
  if (!Object.values(can).some(Boolean)) return null;
  const blocked = blocks.value.has(p.userId);
  const run = (action: () => Promise<void>) => {
    setOpen(false);
    setConfirm(null);
    act(action);
  };
  const item = (
    testid: string,
    label: string,
    onClick: () => void,
    opts: { danger?: boolean; needsLive?: boolean; ariaLabel?: string } = {},
  ) => (
    <li role="none">
      <button
        type="button"
        role="menuitem"
        class={`menu-item ${opts.danger ? 'danger' : ''}`}
        data-testid={testid}
        aria-label={opts.ariaLabel}
        disabled={opts.needsLive && !live}
        title={opts.needsLive && !live ? t('room.needsLive') : undefined}
        onClick={onClick}
      >
        {label}
      </button>
    </li>
  );
  return (
    <span class="person-menu" ref={root}>
      <button
        type="button"
        class="button small ghost"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-label={t('room.menu', { name: p.displayName })}
        data-testid="person-menu"
        onClick={() => {
          setOpen(!open);
          setConfirm(null);
        }}
      >
        ⋯
      </button>
      {open && !confirm && (
        <ul class="menu" role="menu" aria-label={t('room.menu', { name: p.displayName })} data-testid="person-menu-list">
          {can.cohost &&
            (p.role === 'COHOST'
              ? item('menu-unmake-cohost', t('room.unmakeCohost'), () => run(() => setCohost(p.userId, false)))
              : p.role === 'PARTICIPANT' &&
                item('menu-make-cohost', t('room.makeCohost'), () => run(() => setCohost(p.userId, true))))}
          {can.transfer && item('menu-transfer-host', t('room.transferHost'), () => setConfirm('transfer'))}
          {can.moderate &&
            (p.micLocked
              ? item('menu-unlock-mic', t('room.unlockMic'), () => run(() => hardMute(p.userId, { mic: false })))
              : item('menu-mute-mic', t('room.muteMic'), () => run(() => hardMute(p.userId, { mic: true }))))}
          {can.moderate &&
            (p.cameraLocked
              ? item('menu-unlock-camera', t('room.unlockCamera'), () => run(() => hardMute(p.userId, { camera: false })))
              : item('menu-stop-camera', t('room.stopCamera'), () => run(() => hardMute(p.userId, { camera: true }))))}
          {can.moderate &&
            item('menu-kick', t('room.kick'), () => setConfirm('kick'), {
              danger: true,
              ariaLabel: t('room.kickLabel', { name: p.displayName }),
            })}
          {can.report &&
            item('menu-report', t('room.report'), () => {
              setOpen(false);
              props.onReport();
            })}
          {can.block &&
            (blocked
              ? item('menu-unblock', t('room.unblock'), () => run(() => unblock(p.userId)))
              : item('menu-block', t('room.block'), () => run(() => block(toUser(p))), { danger: true }))}
        </ul>
      )}
      {confirm && (
        <span class="confirm" role="group" aria-label={confirmText(confirm, p)} data-testid={`confirm-${confirm}`}>
          <span class="muted">{confirmText(confirm, p)}</span>
          <button
            type="button"
            class="button small danger"
            data-testid={`confirm-${confirm}-yes`}
            onClick={() => run(() => (confirm === 'kick' ? kick(p.userId) : transferHost(p.userId)))}
          >
            {confirm === 'kick' ? t('room.kickYes') : t('room.transferYes')}
          </button>
          <button type="button" class="button small ghost" onClick={() => setConfirm(null)}>
            {t('action.cancel')}
          </button>
        </span>
      )}
    </span>
  );
}

function confirmText(kind: 'kick' | 'transfer', p: Participant): string {
  return kind === 'kick'
    ? t('room.kickConfirm', { name: p.displayName })
    : t('room.transferConfirm', { name: p.displayName });
}

/** For hosts and co-hosts: mute everyone, lock / unlock, copy the invite link, settings. */
export function HostBar({ room, act }: { room: RoomDetail; act: Act }) {
  const [settings, setSettings] = useState(false);
  const [copied, setCopied] = useState(false);

  async function copyInvite() {
    const key = await fetchRoomKey();
    if (!key) return;
    const link = inviteLink(room.id, key);
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      window.prompt(t('room.copyPrompt'), link);
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  }

  return (
    <div class="host-bar row" role="group" aria-label={t('room.settings')} data-testid="host-bar">
      <button
        type="button"
        class="button small"
        data-testid="mute-all"
        onClick={() =>
          act(async () => {
            const count = await muteAll();
            showNotice('info', 'room.mutedAll', { count });
          })
        }
      >
        <Icon name="micOff" /> {t('room.muteAll')}
      </button>
      <button
        type="button"
        class="button small"
        aria-pressed={!!room.isLocked}
        data-testid="lock-room"
        data-locked={room.isLocked ? 'true' : 'false'}
        onClick={() => act(() => setLocked(!room.isLocked))}
      >
        <Icon name="lock" /> {room.isLocked ? t('room.unlock') : t('room.lock')}
      </button>
      {room.isLocked && (
        <button type="button" class="button small" data-testid="copy-invite" onClick={() => act(copyInvite)}>
          <Icon name="link" /> {copied ? t('room.inviteCopied') : t('room.copyInvite')}
        </button>
      )}
      <button type="button" class="button small" data-testid="room-settings" onClick={() => setSettings(true)}>
        {t('room.settings')}
      </button>
      {settings && <RoomSettingsDialog room={room} onClose={() => setSettings(false)} />}
    </div>
  );
}

const SLOW_CHOICES = [0, 5, 10, 30, 60, 120];

/** Shared fields of the create and settings forms: second language, mic rules. */
export function SecondLanguageSelect(props: { id: string; value: string; exclude: string; onChange: (v: string) => void }) {
  const languages = meta.value?.languages ?? ['en', 'vi'];
  return (
    <select id={props.id} name="secondLanguage" value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
      <option value="">{t('settings.none')}</option>
      {languages
        .filter((code) => code !== props.exclude)
        .map((code) => (
          <option key={code} value={code}>
            {languageName(code)}
          </option>
        ))}
    </select>
  );
}

function useModal(onClose: () => void) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal?.();
  }, []);
  return { ref: dialog, onClose, onCancel: onClose };
}

/** Live settings of the room (native <dialog>, as the create form). */
export function RoomSettingsDialog({ room, onClose }: { room: RoomDetail; onClose: () => void }) {
  const modal = useModal(onClose);
  const m = meta.value;
  const languages = m?.languages ?? ['en', 'vi'];
  const min = Math.max(m?.minParticipants ?? 2, room.participantCount);
  const max = m?.maxParticipants ?? 12;
  const seats = Array.from({ length: Math.max(0, max - min + 1) }, (_, i) => min + i);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [form, setForm] = useState({
    title: room.title,
    topic: room.topic ?? '',
    language: room.language,
    secondLanguage: room.secondLanguage ?? '',
    level: room.level,
    maxParticipants: room.maxParticipants,
    noMic: !!room.noMic,
    micRequired: !!room.micRequired,
    slowModeSecs: room.slowModeSecs ?? 0,
  });
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));
  const slowChoices = SLOW_CHOICES.includes(form.slowModeSecs) ? SLOW_CHOICES : [...SLOW_CHOICES, form.slowModeSecs];

  async function submit() {
    setBusy(true);
    setError(null);
    try {
      await updateSettings({
        title: form.title.trim(),
        topic: form.topic.trim() || null,
        language: form.language,
        secondLanguage: form.secondLanguage && form.secondLanguage !== form.language ? form.secondLanguage : null,
        level: form.level,
        maxParticipants: form.maxParticipants,
        noMic: form.noMic,
        micRequired: form.noMic ? false : form.micRequired,
        slowModeSecs: form.slowModeSecs,
      });
      showNotice('info', 'settings.saved');
      onClose();
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <dialog {...modal} class="dialog" aria-labelledby="settings-title" data-testid="settings-dialog">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h2 id="settings-title">{t('settings.title')}</h2>
        <label for="settings-title-input">{t('create.roomTitle')}</label>
        <input
          id="settings-title-input"
          name="title"
          required
          maxLength={100}
          value={form.title}
          onInput={(e) => set({ title: e.currentTarget.value })}
        />
        <label for="settings-topic">{t('create.topic')}</label>
        <input
          id="settings-topic"
          name="topic"
          maxLength={100}
          value={form.topic}
          onInput={(e) => set({ topic: e.currentTarget.value })}
        />
        <div class="form-row">
          <div>
            <label for="settings-language">{t('create.language')}</label>
            <select id="settings-language" name="language" value={form.language} onChange={(e) => set({ language: e.currentTarget.value })}>
              {languages.map((code) => (
                <option key={code} value={code}>
                  {languageName(code)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="settings-second-language">{t('settings.secondLanguage')}</label>
            <SecondLanguageSelect
              id="settings-second-language"
              value={form.secondLanguage}
              exclude={form.language}
              onChange={(v) => set({ secondLanguage: v })}
            />
          </div>
        </div>
        <div class="form-row">
          <div>
            <label for="settings-level">{t('create.level')}</label>
            <select id="settings-level" name="level" value={form.level} onChange={(e) => set({ level: e.currentTarget.value as Level })}>
              {(m?.levels ?? LEVELS).map((level) => (
                <option key={level} value={level}>
                  {levelLabel(level)}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="settings-seats">{t('create.seats')}</label>
            <select
              id="settings-seats"
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
          <div>
            <label for="settings-slow">{t('settings.slowMode')}</label>
            <select
              id="settings-slow"
              name="slowModeSecs"
              value={String(form.slowModeSecs)}
              onChange={(e) => set({ slowModeSecs: Number(e.currentTarget.value) })}
            >
              {slowChoices.map((secs) => (
                <option key={secs} value={String(secs)}>
                  {secs === 0 ? t('settings.slowOff') : t('settings.slowSecs', { secs })}
                </option>
              ))}
            </select>
          </div>
        </div>
        <div class="checkbox">
          <input id="settings-no-mic" type="checkbox" checked={form.noMic} onChange={(e) => set({ noMic: e.currentTarget.checked })} />
          <label for="settings-no-mic">{t('settings.noMic')}</label>
        </div>
        <div class="checkbox">
          <input
            id="settings-mic-required"
            type="checkbox"
            checked={form.micRequired && !form.noMic}
            disabled={form.noMic}
            onChange={(e) => set({ micRequired: e.currentTarget.checked })}
          />
          <label for="settings-mic-required">{t('settings.micRequired')}</label>
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
          <button type="submit" class="button primary" disabled={busy} data-testid="settings-save">
            {t('settings.save')}
          </button>
        </div>
      </form>
    </dialog>
  );
}

const REASON_KEYS: Record<ReportReason, MessageKey> = {
  spam: 'reason.spam',
  harassment: 'reason.harassment',
  hate: 'reason.hate',
  sexual: 'reason.sexual',
  underage: 'reason.underage',
  other: 'reason.other',
};

export const reasonLabel = (reason: string): string =>
  REASON_KEYS[reason as ReportReason] ? t(REASON_KEYS[reason as ReportReason]) : reason;

/** Report one person: a reason and an optional message; the server keeps the chat lines. */
export function ReportDialog({ p, onClose }: { p: Participant; onClose: () => void }) {
  const modal = useModal(onClose);
  const [reason, setReason] = useState<ReportReason>('spam');
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit() {
    setBusy(true);
    setError(null);
    try {
      await report(p.userId, reason, message);
      showNotice('info', 'report.sent');
      onClose();
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <dialog {...modal} class="dialog" aria-labelledby="report-title" data-testid="report-dialog">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h2 id="report-title">{t('report.title', { name: p.displayName })}</h2>
        <label for="report-reason">{t('report.reason')}</label>
        <select
          id="report-reason"
          name="reason"
          data-testid="report-reason"
          value={reason}
          onChange={(e) => setReason(e.currentTarget.value as ReportReason)}
        >
          {REPORT_REASONS.map((r) => (
            <option key={r} value={r}>
              {reasonLabel(r)}
            </option>
          ))}
        </select>
        <label for="report-message">{t('report.message')}</label>
        <textarea
          id="report-message"
          name="message"
          data-testid="report-message"
          rows={3}
          maxLength={500}
          value={message}
          onInput={(e) => setMessage(e.currentTarget.value)}
        />
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="row end">
          <button type="button" class="button ghost" onClick={onClose}>
            {t('action.cancel')}
          </button>
          <button type="submit" class="button primary" disabled={busy} data-testid="report-submit">
            {t('report.submit')}
          </button>
        </div>
      </form>
    </dialog>
  );
}
