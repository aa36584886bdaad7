// The camera and microphone: asked for together on entering a room; when that fails, each on
// its own, so a person without a camera (or who refused it) still talks, and one who refused
// both still listens and watches. The outcome is explained to them (mediaNoticeKey).
import type { MessageKey } from '../i18n';

/** Why a device is not used. */
export type DeviceProblem = 'denied' | 'missing' | 'busy' | 'insecure' | 'error';

export interface LocalAccess {
  audio: 'ok' | DeviceProblem;
  video: 'ok' | DeviceProblem;
}

export interface LocalMedia<S> {
  stream: S | null;
  access: LocalAccess;
}

/** A getUserMedia failure, by DOMException name (the spec's and older browsers' names). */
export function classifyMediaError(err: unknown): DeviceProblem {
  const name = (err as { name?: string } | null)?.name ?? '';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
    case 'ConstraintNotSatisfiedError':
      return 'missing';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'busy';
    default:
      return 'error';
  }
}

/** Camera size we ask for: enough for a tile, light for the uplink and the others' CPUs. */
export const VIDEO_CONSTRAINTS: MediaTrackConstraints = {
  width: { ideal: 640 },
  height: { ideal: 360 },
  frameRate: { ideal: 24, max: 30 },
};

export const AUDIO_CONSTRAINTS: MediaTrackConstraints = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};

/** What this module needs of a MediaStream (tests pass plain objects). */
export interface StreamLike<T> {
  getTracks(): T[];
  addTrack(track: T): void;
}

type GetUserMedia<S> = (constraints: MediaStreamConstraints) => Promise<S>;

/**
 * Both devices, else each alone. `getUserMedia` is null where the browser has none (an http
 * page other than localhost: not a secure context). Never throws.
 */
export async function acquireLocalMedia<T, S extends StreamLike<T>>(
  getUserMedia: GetUserMedia<S> | null,
  video: MediaTrackConstraints = VIDEO_CONSTRAINTS,
  audio: MediaTrackConstraints = AUDIO_CONSTRAINTS,
): Promise<LocalMedia<S>> {
  if (!getUserMedia) return { stream: null, access: { audio: 'insecure', video: 'insecure' } };
  try {
    return { stream: await getUserMedia({ audio, video }), access: { audio: 'ok', video: 'ok' } };
  } catch {
    // Which one failed? Ask for each alone (a refused permission answers at once, no prompt).
    const [mic, cam] = [await attempt(getUserMedia, { audio }), await attempt(getUserMedia, { video })];
    let stream: S | null = null;
    if (mic.stream) stream = mic.stream;
    if (cam.stream) {
      if (stream) cam.stream.getTracks().forEach((t) => stream!.addTrack(t));
      else stream = cam.stream;
    }
    return { stream, access: { audio: mic.problem ?? 'ok', video: cam.problem ?? 'ok' } };
  }
}

async function attempt<S>(
  getUserMedia: GetUserMedia<S>,
  constraints: MediaStreamConstraints,
): Promise<{ stream: S | null; problem: DeviceProblem | null }> {
  try {
    return { stream: await getUserMedia(constraints), problem: null };
  } catch (err) {
    return { stream: null, problem: classifyMediaError(err) };
  }
}

export const publishes = (access: LocalAccess): boolean => access.audio === 'ok' || access.video === 'ok';

/** The message for what we could not get, or null when both work. */
export function mediaNoticeKey(access: LocalAccess): MessageKey | null {
  const { audio, video } = access;
  if (audio === 'ok' && video === 'ok') return null;
  if (audio === 'insecure') return 'media.insecure';
  if (audio !== 'ok' && video !== 'ok') {
    return audio === 'denied' || video === 'denied' ? 'media.listenOnlyDenied' : 'media.listenOnlyMissing';
  }
  if (audio === 'ok') {
    if (video === 'denied') return 'media.cameraDenied';
    if (video === 'missing') return 'media.cameraMissing';
    if (video === 'busy') return 'media.cameraBusy';
    return 'media.cameraError';
  }
  if (audio === 'denied') return 'media.micDenied';
  if (audio === 'missing') return 'media.micMissing';
  if (audio === 'busy') return 'media.micBusy';
  return 'media.micError';
}
