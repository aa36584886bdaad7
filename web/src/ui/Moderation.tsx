// The room's moderation UI (docs/MODERATION.md): the person menu, the hosts' bar (mute
// everyone, lock, invite link, settings), the settings dialog and the report dialog.
import { useEffect, useRef, useState } from 'preact/hooks';

import { REPORT_REASONS, type Participant, type ReportReason, type RoomDetail } from '../api/types';
import { t, type MessageKey } from '../i18n';
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
import {
  copyText,
  FormDialog,
  LanguageField,
  LevelField,
  MicFields,
  SeatsField,
  SecondLanguageField,
  SelectField,
  TitleTopicFields,
  useCopiedFlag,
} from './RoomFields';

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
  const [copied, flashCopied] = useCopiedFlag();

  async function copyInvite() {
    const key = await fetchRoomKey();
    if (!key) return;
    await copyText(inviteLink(room.id, key));
    flashCopied();
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

/** Live settings of the room (native <dialog>, as the create form). */
export function RoomSettingsDialog({ room, onClose }: { room: RoomDetail; onClose: () => void }) {
  const m = meta.value;
  const min = Math.max(m?.minParticipants ?? 2, room.participantCount);
  const max = m?.maxParticipants ?? 12;
  const seats = Array.from({ length: Math.max(0, max - min + 1) }, (_, i) => min + i);
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
  const fields = { prefix: 'settings', form, set } as const;
  const slowChoices = SLOW_CHOICES.includes(form.slowModeSecs) ? SLOW_CHOICES : [...SLOW_CHOICES, form.slowModeSecs];

  async function submit() {
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
  }

  return (
    <FormDialog
      titleId="settings-title"
      title={t('settings.title')}
      testId="settings-dialog"
      submitLabel="settings.save"
      submitTestId="settings-save"
      submit={submit}
      onClose={onClose}
    >
      <TitleTopicFields {...fields} titleId="settings-title-input" />
      <div class="form-row">
        <LanguageField {...fields} />
        <div>
          <SecondLanguageField {...fields} />
        </div>
      </div>
      <div class="form-row">
        <LevelField {...fields} />
        <SeatsField {...fields} seats={seats} />
        <SelectField
          id="settings-slow"
          name="slowModeSecs"
          label="settings.slowMode"
          value={form.slowModeSecs}
          options={slowChoices}
          text={(secs) => (secs === 0 ? t('settings.slowOff') : t('settings.slowSecs', { secs }))}
          onChange={(secs) => set({ slowModeSecs: Number(secs) })}
        />
      </div>
      <MicFields {...fields} />
    </FormDialog>
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
  const [reason, setReason] = useState<ReportReason>('spam');
  const [message, setMessage] = useState('');

  async function submit() {
    await report(p.userId, reason, message);
    showNotice('info', 'report.sent');
    onClose();
  }

  return (
    <FormDialog
      titleId="report-title"
      title={t('report.title', { name: p.displayName })}
      testId="report-dialog"
      submitLabel="report.submit"
      submitTestId="report-submit"
      submit={submit}
      onClose={onClose}
    >
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
    </FormDialog>
  );
}
