// The /doctor page's verdicts, pure: what each check found → ok / warn / fail with a message
// and a fix (i18n keys), round-trip statistics, and the plain-text report a user pastes to
// whoever runs the server. The side effects (browser APIs, the probe) are in checks.ts.
import type { MessageKey } from '../i18n';
import type { DeviceProblem } from '../media/devices';

export type Status = 'pending' | 'running' | 'ok' | 'warn' | 'fail' | 'skip';
export type CheckId = 'secure' | 'devices' | 'realtime' | 'udp' | 'tcp' | 'relay';
export const CHECK_IDS: CheckId[] = ['secure', 'devices', 'realtime', 'udp', 'tcp', 'relay'];
export type MediaPath = 'udp' | 'tcp' | 'relay';

export const NAME_KEYS: Record<CheckId, MessageKey> = {
  secure: 'doctor.secure.name',
  devices: 'doctor.devices.name',
  realtime: 'doctor.realtime.name',
  udp: 'doctor.udp.name',
  tcp: 'doctor.tcp.name',
  relay: 'doctor.relay.name',
};

export type Params = Record<string, string | number>;

export interface CheckResult {
  id: CheckId;
  status: Status;
  message?: MessageKey;
  fix?: MessageKey;
  params?: Params;
  /** Median round trip in ms, for the media paths that work. */
  rttMs?: number;
}

export const pending = (id: CheckId): CheckResult => ({ id, status: 'pending' });

export function secureResult(isSecureContext: boolean): CheckResult {
  return isSecureContext
    ? { id: 'secure', status: 'ok', message: 'doctor.secure.ok' }
    : { id: 'secure', status: 'fail', message: 'doctor.secure.fail', fix: 'doctor.secure.fix' };
}

export type Permission = 'granted' | 'denied' | 'prompt' | 'unknown';

export interface DeviceFindings {
  /** navigator.mediaDevices exists (not on an insecure page). */
  available: boolean;
  microphones: number;
  cameras: number;
  mic: Permission;
  camera: Permission;
  /** What getUserMedia said when the user pressed the button; absent before. */
  tried?: { audio: 'ok' | DeviceProblem; video: 'ok' | DeviceProblem };
}

const PERMISSION_KEYS: Record<Permission, MessageKey> = {
  granted: 'doctor.perm.granted',
  denied: 'doctor.perm.denied',
  prompt: 'doctor.perm.prompt',
  unknown: 'doctor.perm.unknown',
};

/** The devices line, whatever the verdict: counts and permission states. Permission words
 * are keys; the page translates them before filling the message in. */
export function deviceParams(f: DeviceFindings): { mics: number; cams: number; mic: MessageKey; cam: MessageKey } {
  const perm = (p: Permission, tried: 'ok' | DeviceProblem | undefined): Permission =>
    tried === 'ok' ? 'granted' : tried === 'denied' ? 'denied' : p;
  return {
    mics: f.microphones,
    cams: f.cameras,
    mic: PERMISSION_KEYS[perm(f.mic, f.tried?.audio)],
    cam: PERMISSION_KEYS[perm(f.camera, f.tried?.video)],
  };
}

export function devicesResult(f: DeviceFindings): CheckResult {
  const verdict = deviceVerdict(f);
  return f.available ? { ...verdict, params: deviceParams(f) } : verdict;
}

function deviceVerdict(f: DeviceFindings): CheckResult {
  const base = { id: 'devices' as const };
  if (!f.available) return { ...base, status: 'fail', message: 'doctor.devices.unavailable', fix: 'doctor.secure.fix' };
  const audio = f.tried?.audio ?? (f.mic === 'denied' ? 'denied' : undefined);
  const video = f.tried?.video ?? (f.camera === 'denied' ? 'denied' : undefined);
  if (audio === 'denied' || video === 'denied') {
    return { ...base, status: audio === 'denied' ? 'fail' : 'warn', message: 'doctor.devices.denied', fix: 'doctor.devices.deniedFix' };
  }
  const noMic = f.microphones === 0 || audio === 'missing';
  const noCam = f.cameras === 0 || video === 'missing';
  if (noMic) return { ...base, status: 'fail', message: 'doctor.devices.noMic', fix: 'doctor.devices.missingFix' };
  if (audio === 'busy' || video === 'busy') {
    return { ...base, status: audio === 'busy' ? 'fail' : 'warn', message: 'doctor.devices.busy', fix: 'doctor.devices.busyFix' };
  }
  if (audio === 'error' || video === 'error') {
    return { ...base, status: audio === 'error' ? 'fail' : 'warn', message: 'doctor.devices.error', fix: 'doctor.devices.busyFix' };
  }
  if (noCam) return { ...base, status: 'warn', message: 'doctor.devices.noCamera', fix: 'doctor.devices.missingFix' };
  const granted = (f.tried?.audio === 'ok' || f.mic === 'granted') && (f.tried?.video === 'ok' || f.camera === 'granted');
  if (!granted) return { ...base, status: 'warn', message: 'doctor.devices.notAsked', fix: 'doctor.devices.askFix' };
  return { ...base, status: 'ok', message: 'doctor.devices.ok' };
}

/** The Socket.IO transport after waiting for the upgrade: null = not connected. */
export function realtimeResult(transport: string | null): CheckResult {
  if (transport === 'websocket') return { id: 'realtime', status: 'ok', message: 'doctor.realtime.ok' };
  if (transport === 'polling') {
    return { id: 'realtime', status: 'warn', message: 'doctor.realtime.polling', fix: 'doctor.realtime.pollingFix' };
  }
  return { id: 'realtime', status: 'fail', message: 'doctor.realtime.fail', fix: 'doctor.realtime.failFix' };
}

export interface RttStats {
  median: number;
  min: number;
  max: number;
}

/** Whole milliseconds; null without samples. */
export function rttStats(samples: readonly number[]): RttStats | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median: Math.round(median), min: Math.round(sorted[0]), max: Math.round(sorted[sorted.length - 1]) };
}

/** A round trip above this makes conversation awkward (people talk over each other). */
export const SLOW_RTT_MS = 300;

/** What a media path test came to. */
export type ProbeOutcome =
  | { kind: 'rtt'; samples: number[] }
  | { kind: 'meshMode' }
  | { kind: 'iceTcpOff' }
  | { kind: 'noTurn' }
  | { kind: 'noConnection' }
  | { kind: 'error'; code: string };

const FAIL_FIX: Record<MediaPath, MessageKey> = {
  udp: 'doctor.udp.failFix',
  tcp: 'doctor.tcp.failFix',
  relay: 'doctor.relay.failFix',
};

export function pathResult(id: MediaPath, outcome: ProbeOutcome): CheckResult {
  switch (outcome.kind) {
    case 'rtt': {
      const stats = rttStats(outcome.samples);
      if (!stats) return { id, status: 'fail', message: 'doctor.path.fail', fix: FAIL_FIX[id] };
      const params = { rtt: stats.median, min: stats.min, max: stats.max };
      return stats.median > SLOW_RTT_MS
        ? { id, status: 'warn', message: 'doctor.path.slow', fix: 'doctor.path.slowFix', params, rttMs: stats.median }
        : { id, status: 'ok', message: 'doctor.path.ok', params, rttMs: stats.median };
    }
    case 'meshMode':
      return { id, status: 'skip', message: 'doctor.path.meshMode' };
    case 'iceTcpOff':
      return { id, status: 'warn', message: 'doctor.tcp.off', fix: 'doctor.tcp.offFix' };
    case 'noTurn':
      return { id, status: 'warn', message: 'doctor.relay.none', fix: 'doctor.relay.noneFix' };
    case 'noConnection':
      return { id, status: 'fail', message: 'doctor.path.fail', fix: FAIL_FIX[id] };
    case 'error':
      return { id, status: 'fail', message: 'doctor.path.error', fix: FAIL_FIX[id], params: { code: outcome.code } };
  }
}

export const STATUS_KEYS: Record<Status, MessageKey> = {
  pending: 'doctor.status.pending',
  running: 'doctor.status.running',
  ok: 'doctor.status.ok',
  warn: 'doctor.status.warn',
  fail: 'doctor.status.fail',
  skip: 'doctor.status.skip',
};

type Translate = (key: MessageKey, params?: Params) => string;

/** Message parameters with translated words where the value is a key (permission states). */
export function resolveParams(params: Params | undefined, tr: Translate): Params | undefined {
  if (!params) return undefined;
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) {
    out[k] = typeof v === 'string' && v.startsWith('doctor.') ? tr(v as MessageKey) : v;
  }
  return out;
}

/** The report as plain text: one block per check, its status, what was found and the fix. */
export function reportText(
  results: readonly CheckResult[],
  tr: Translate,
  context: { url: string; userAgent: string; time: string },
): string {
  const lines = [tr('doctor.report.title'), `${context.time} · ${context.url}`, context.userAgent, ''];
  for (const r of results) {
    lines.push(`[${tr(STATUS_KEYS[r.status])}] ${tr(NAME_KEYS[r.id])}`);
    const params = resolveParams(r.params, tr);
    if (r.message) lines.push(`  ${tr(r.message, params)}`);
    if (r.fix) lines.push(`  ${tr('doctor.fix')}: ${tr(r.fix, params)}`);
  }
  return lines.join('\n');
}
