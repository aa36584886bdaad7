// The /doctor page: checks what audio and video need, one after the other, each with a fix
// in plain words, and a report to copy for whoever runs the server.
import { signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';

import { api } from '../api/client';
import {
  inspectDevices,
  probeLocalRelay,
  probeServer,
  settledTransport,
} from '../doctor/checks';
import {
  CHECK_IDS,
  NAME_KEYS,
  STATUS_KEYS,
  devicesResult,
  pathResult,
  pending,
  realtimeResult,
  reportText,
  resolveParams,
  secureResult,
  type CheckId,
  type CheckResult,
  type MediaPath,
} from '../doctor/report';
import { t } from '../i18n';
import type { IceServerConfig } from '../realtime/events';

const results = signal<CheckResult[]>(CHECK_IDS.map(pending));
const running = signal(false);
const copyState = signal<'idle' | 'copied' | 'failed'>('idle');
const reportShown = signal('');

function put(result: CheckResult): void {
  results.value = results.value.map((r) => (r.id === result.id ? result : r));
}

const mark = (id: CheckId) => put({ id, status: 'running' });

async function runChecks(): Promise<void> {
  if (running.value) return;
  running.value = true;
  copyState.value = 'idle';
  results.value = CHECK_IDS.map(pending);
  try {
    put(secureResult(window.isSecureContext));
    mark('devices');
    put(devicesResult(await inspectDevices(false)));
    mark('realtime');
    put(realtimeResult(await settledTransport()));
    const [meta, ice] = await Promise.all([
      api.meta().catch(() => null),
      api.iceServers().catch(() => ({ iceServers: [] as IceServerConfig[] })),
    ]);
    const mesh = meta?.mediaMode === 'mesh';
    for (const path of ['udp', 'tcp', 'relay'] as MediaPath[]) {
      mark(path);
      if (mesh && path !== 'relay') put(pathResult(path, { kind: 'meshMode' }));
      else if (mesh) put(pathResult(path, await probeLocalRelay(ice.iceServers)));
      else put(pathResult(path, await probeServer(path, ice.iceServers)));
    }
  } finally {
    running.value = false;
  }
}

async function askDevices(): Promise<void> {
  put({ id: 'devices', status: 'running' });
  put(devicesResult(await inspectDevices(true)));
}

function report(): string {
  return reportText(results.value, t, {
    url: window.location.origin,
    userAgent: navigator.userAgent,
    time: new Date().toISOString(),
  });
}

async function copyReport(): Promise<void> {
  const text = report();
  reportShown.value = text;
  try {
    await navigator.clipboard.writeText(text);
    copyState.value = 'copied';
  } catch {
    // No clipboard permission (or http): the text is shown below to copy by hand.
    copyState.value = 'failed';
  }
}

export function Doctor() {
  useEffect(() => {
    void runChecks();
  }, []);
  const busy = running.value;
  return (
    <section class="panel doctor" data-testid="doctor">
      <h1>{t('doctor.title')}</h1>
      <p>{t('doctor.intro')}</p>
      <ol class="doctor-checks">
        {results.value.map((r) => (
          <CheckRow key={r.id} result={r} />
        ))}
      </ol>
      <div class="doctor-actions">
        <button type="button" class="button" disabled={busy} onClick={() => void runChecks()}>
          {t('doctor.runAgain')}
        </button>
        <button type="button" class="button primary" disabled={busy} onClick={() => void copyReport()} data-testid="doctor-copy">
          {t('doctor.copy')}
        </button>
      </div>
      {copyState.value !== 'idle' && (
        <p class="media-line info" role="status" data-testid="doctor-copy-state">
          {t(copyState.value === 'copied' ? 'doctor.copied' : 'doctor.copyFailed')}
        </p>
      )}
      {reportShown.value && (
        <textarea class="doctor-report" readOnly rows={12} data-testid="doctor-report" value={reportShown.value} />
      )}
    </section>
  );
}

function CheckRow({ result }: { result: CheckResult }) {
  const params = resolveParams(result.params, t);
  return (
    <li class={`doctor-check ${result.status}`} data-check={result.id} data-status={result.status} data-rtt={result.rttMs}>
      <div class="doctor-head">
        <span class={`doctor-status ${result.status}`}>{t(STATUS_KEYS[result.status])}</span>
        <strong>{t(NAME_KEYS[result.id])}</strong>
      </div>
      {result.message && <p class="doctor-message">{t(result.message, params)}</p>}
      {result.fix && (
        <p class="doctor-fix">
          <strong>{t('doctor.fix')}:</strong> {t(result.fix, params)}
        </p>
      )}
      {result.id === 'devices' && result.status !== 'running' && result.status !== 'pending' && (
        <button type="button" class="button small" onClick={() => void askDevices()} data-testid="doctor-ask-devices">
          {t('doctor.devices.ask')}
        </button>
      )}
    </li>
  );
}
