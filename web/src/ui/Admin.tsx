// The instance admins' page (`/admin`, docs/MODERATION.md "The instance"): live rooms with
// their people and open reports, reports with their evidence, bans and the ban form, and
// the audit log. Plain tables that scroll sideways on a phone.
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

import { api } from '../api/client';
import type { AdminRoom, AuditEntry, Ban, Report, UserPublic } from '../api/types';
import { errorCode, errorKey, errorMessage } from '../errors';
import { formatDateTime, formatTime, type MessageKey, t } from '../i18n';
import { Icon } from './Icon';
import { reasonLabel } from './Moderation';

const DURATIONS: { key: 'admin.hour' | 'admin.day' | 'admin.week' | 'admin.forever'; secs: number | null }[] = [
  { key: 'admin.hour', secs: 3600 },
  { key: 'admin.day', secs: 86400 },
  { key: 'admin.week', secs: 7 * 86400 },
  { key: 'admin.forever', secs: null },
];

/** Lists come as `{<name>: [...]}` (docs/MODERATION.md, "Admin REST in detail"). */
function list<T>(answer: unknown, name: string): T[] {
  const inner = (answer as Record<string, unknown> | null)?.[name];
  return Array.isArray(inner) ? (inner as T[]) : [];
}

const who = (u: UserPublic | null | undefined): string => (u ? `${u.displayName}${u.username ? ` (@${u.username})` : ''}` : '—');

interface AdminData {
  rooms: AdminRoom[];
  reports: Report[];
  bans: Ban[];
  audit: AuditEntry[];
}

export function Admin() {
  const [data, setData] = useState<AdminData | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  async function load() {
    try {
      const [rooms, reports, bans, audit] = await Promise.all([
        api.admin.rooms(),
        api.admin.reports(),
        api.admin.bans(),
        api.admin.audit(),
      ]);
      setData({
        rooms: list<AdminRoom>(rooms, 'rooms'),
        reports: list<Report>(reports, 'reports'),
        bans: list<Ban>(bans, 'bans'),
        audit: list<AuditEntry>(audit, 'entries'),
      });
      setFailure(null);
    } catch (err) {
      setFailure(errorCode(err));
    }
  }

  useEffect(() => {
    void load();
  }, []);

  const act = (action: () => Promise<unknown>) => {
    setError(null);
    setDone(false);
    action()
      .then(() => {
        setDone(true);
        return load();
      })
      .catch((err) => setError(errorMessage(err)));
  };

  if (failure) {
    return (
      <section class="panel centered" data-testid="admin-unavailable" data-code={failure}>
        <h1>{t('admin.title')}</h1>
        <p role="alert">{failure === 'NOT_ADMIN' ? t('admin.notAdmin') : t(errorKey(failure))}</p>
      </section>
    );
  }
  if (!data) {
    return (
      <section class="panel centered" aria-busy="true">
        <span class="spinner" aria-hidden="true" />
      </section>
    );
  }

  return (
    <div class="admin" data-testid="admin-page">
      <div class="row">
        <h1>{t('admin.title')}</h1>
        <button type="button" class="button small" data-testid="admin-refresh" onClick={() => void load()}>
          {t('admin.refresh')}
        </button>
      </div>
      {error && (
        <p class="form-error" role="alert" data-testid="admin-error">
          {error}
        </p>
      )}
      {done && !error && (
        <p class="muted" role="status">
          {t('admin.done')}
        </p>
      )}
      <RoomsTable rooms={data.rooms} act={act} />
      <ReportsTable reports={data.reports} act={act} />
      <BanForm act={act} />
      <BansTable bans={data.bans} act={act} />
      <AuditTable entries={data.audit} />
    </div>
  );
}

type Act = (action: () => Promise<unknown>) => void;

/**
 * One titled admin table: a section headed by `title`, its header row from `columns` (`null`
 * for a column without a heading), one `row(item)` per item, or a single "nothing here" row.
 */
function AdminTable<T>({
  name,
  title,
  columns,
  items,
  row,
}: {
  name: 'rooms' | 'reports' | 'bans' | 'audit';
  title: MessageKey;
  columns: (MessageKey | null)[];
  items: T[];
  row: (item: T, index: number) => JSX.Element;
}) {
  return (
    <section aria-labelledby={`admin-${name}`}>
      <h2 id={`admin-${name}`}>{t(title)}</h2>
      <div class="table-wrap">
        <table class="admin-table" data-testid={`admin-${name}`}>
          <thead>
            <tr>
              {columns.map((key, i) => (key ? <th key={i}>{t(key)}</th> : <th key={i} />))}
            </tr>
          </thead>
          <tbody>
            {items.length === 0 && (
              <tr>
                <td colSpan={columns.length} class="muted">
                  {t('admin.empty')}
                </td>
              </tr>
            )}
            {items.map(row)}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function RoomsTable({ rooms, act }: { rooms: AdminRoom[]; act: Act }) {
  return (
    <AdminTable
      name="rooms"
      title="admin.rooms"
      columns={['admin.room', 'admin.people', 'admin.openReports', null]}
      items={rooms}
      row={({ room, openReports }) => (
        <tr key={room.id} data-room-id={room.id}>
          <td>
            {room.isLocked && <Icon name="lock" />} 
            {room.title}
          </td>
          <td>{room.participants.map((p) => p.displayName).join(', ')}</td>
          <td>{openReports}</td>
          <td>
            <button
              type="button"
              class="button small danger"
              data-testid="admin-end-room"
              onClick={() => {
                if (window.confirm(t('admin.endConfirm', { title: room.title }))) act(() => api.admin.endRoom(room.id));
              }}
            >
              {t('admin.endRoom')}
            </button>
          </td>
        </tr>
      )}
    />
  );
}

function ReportsTable({ reports, act }: { reports: Report[]; act: Act }) {
  return (
    <AdminTable
      name="reports"
      title="admin.reports"
      columns={['admin.when', 'admin.reporter', 'admin.reported', 'admin.reason', 'admin.message', 'admin.evidence', null]}
      items={reports}
      row={(r) => (
        <tr key={r.id} data-report-id={r.id}>
          <td>{formatDateTime(r.createdAt)}</td>
          <td>{who(r.reporter)}</td>
          <td>{who(r.reported)}</td>
          <td>{reasonLabel(r.reason)}</td>
          <td>{r.message ?? ''}</td>
          <td>
            <ol class="evidence">
              {(r.evidence ?? []).map((m) => (
                <li key={m.id}>
                  <time dateTime={m.createdAt}>{formatTime(m.createdAt)}</time> <b>{m.displayName}</b>:{' '}
                  {m.message}
                </li>
              ))}
            </ol>
          </td>
          <td class="actions">
            {r.resolvedAt ? (
              <span class="muted">{t('admin.resolved')}</span>
            ) : (
              <button
                type="button"
                class="button small"
                data-testid="admin-resolve"
                onClick={() => act(() => api.admin.resolve(r.id))}
              >
                {t('admin.resolve')}
              </button>
            )}
            <button
              type="button"
              class="button small danger"
              data-testid="admin-ban-reported"
              onClick={() => act(() => api.admin.ban({ userId: r.reportedId, reason: r.reason }))}
            >
              {t('admin.ban')}
            </button>
          </td>
        </tr>
      )}
    />
  );
}

function BanForm({ act }: { act: Act }) {
  const [userId, setUserId] = useState('');
  const [duration, setDuration] = useState<number | null>(86400);
  const [reason, setReason] = useState('');
  return (
    <section aria-labelledby="admin-ban-form">
      <h2 id="admin-ban-form">{t('admin.banForm')}</h2>
      <form
        class="form"
        data-testid="admin-ban-form"
        onSubmit={(e) => {
          e.preventDefault();
          const id = userId.trim();
          if (!id) return;
          act(async () => {
            await api.admin.ban({
              userId: id,
              ...(reason.trim() ? { reason: reason.trim() } : {}),
              ...(duration ? { durationSecs: duration } : {}),
            });
            setUserId('');
            setReason('');
          });
        }}
      >
        <div class="form-row">
          <div>
            <label for="ban-user">{t('admin.userId')}</label>
            <input id="ban-user" data-testid="admin-ban-user" required value={userId} onInput={(e) => setUserId(e.currentTarget.value)} />
          </div>
          <div>
            <label for="ban-duration">{t('admin.duration')}</label>
            <select
              id="ban-duration"
              data-testid="admin-ban-duration"
              value={duration === null ? 'forever' : String(duration)}
              onChange={(e) => setDuration(e.currentTarget.value === 'forever' ? null : Number(e.currentTarget.value))}
            >
              {DURATIONS.map((d) => (
                <option key={d.key} value={d.secs === null ? 'forever' : String(d.secs)}>
                  {t(d.key)}
                </option>
              ))}
            </select>
          </div>
        </div>
        <label for="ban-reason">{t('admin.banReason')}</label>
        <input
          id="ban-reason"
          data-testid="admin-ban-reason"
          maxLength={500}
          value={reason}
          onInput={(e) => setReason(e.currentTarget.value)}
        />
        <div class="row end">
          <button type="submit" class="button danger" data-testid="admin-ban-submit">
            {t('admin.ban')}
          </button>
        </div>
      </form>
    </section>
  );
}

function BansTable({ bans, act }: { bans: Ban[]; act: Act }) {
  return (
    <AdminTable
      name="bans"
      title="admin.bans"
      columns={['admin.user', 'admin.reason', 'admin.until', null]}
      items={bans}
      row={(b) => (
        <tr key={b.userId} data-user-id={b.userId}>
          <td>{b.user ? who(b.user) : b.userId}</td>
          <td>{b.reason ?? ''}</td>
          <td>{b.until ? formatDateTime(b.until) : t('admin.forever')}</td>
          <td>
            <button
              type="button"
              class="button small"
              data-testid="admin-unban"
              onClick={() => act(() => api.admin.unban(b.userId))}
            >
              {t('admin.unban')}
            </button>
          </td>
        </tr>
      )}
    />
  );
}

function AuditTable({ entries }: { entries: AuditEntry[] }) {
  return (
    <AdminTable
      name="audit"
      title="admin.audit"
      columns={['admin.when', 'admin.actor', 'admin.action', 'admin.room', 'admin.target']}
      items={entries}
      row={(e, i) => (
        <tr key={e.id ?? i}>
          <td>{formatDateTime(e.createdAt)}</td>
          <td>{e.actorId ? who(e.actor) : t('admin.commandLine')}</td>
          <td>
            <code>{e.action}</code>
          </td>
          <td>{e.roomId ?? ''}</td>
          <td>{who(e.target)}</td>
        </tr>
      )}
    />
  );
}
