// Server error codes (REST and socket acks) → translated, plain messages.
import { ApiError } from './api/client';
import type { ServerErrorCode } from './errorCodes';
import { t, type MessageKey } from './i18n';

/** Failures the app names itself (no server answer to name them). */
type ClientErrorCode = 'NETWORK_ERROR' | 'TIMEOUT' | 'REALTIME_OFFLINE';

// Typed by the server's own list: a key that is not a real code fails the type check.
const CODE_KEYS: Partial<Record<ServerErrorCode | ClientErrorCode, MessageKey>> = {
  ROOM_FULL: 'error.roomFull',
  TOO_MANY_SEATS: 'error.tooManySeats',
  ROOM_ENDED: 'error.roomEnded',
  KICKED: 'error.kicked',
  ROOM_NOT_FOUND: 'error.roomNotFound',
  INVALID_ID: 'error.roomNotFound',
  NOT_HOST: 'error.notHost',
  NOT_A_PARTICIPANT: 'error.notAParticipant',
  NOT_IN_ROOM: 'error.notAParticipant',
  PARTICIPANT_NOT_FOUND: 'error.participantNotFound',
  CANNOT_KICK_SELF: 'error.cannotKickSelf',
  INVALID_CREDENTIALS: 'error.invalidCredentials',
  USERNAME_TAKEN: 'error.usernameTaken',
  EMAIL_TAKEN: 'error.emailTaken',
  VALIDATION_FAILED: 'error.validation',
  INVALID_BODY: 'error.validation',
  RATE_LIMITED: 'error.rateLimited',
  TOKEN_EXPIRED: 'error.sessionExpired',
  INVALID_TOKEN: 'error.sessionExpired',
  UNAUTHENTICATED: 'error.signInFirst',
  SERVICE_UNAVAILABLE: 'error.busy',
  SERVER_DRAINING: 'error.busy',
  NOT_READY: 'error.busy',
  NETWORK_ERROR: 'error.network',
  TIMEOUT: 'error.timeout',
  REALTIME_OFFLINE: 'error.realtimeOffline',
  NOT_COHOST: 'error.notCohost',
  NOT_ADMIN: 'error.notAdmin',
  ROOM_LOCKED: 'error.roomLocked',
  BAD_ROOM_KEY: 'error.badRoomKey',
  MUTED_BY_HOST: 'error.mutedByHost',
  BLOCKED: 'error.blocked',
  BANNED: 'error.banned',
  SLOW_MODE: 'error.slowMode',
  MESSAGE_NOT_FOUND: 'error.messageNotFound',
  INVALID_TARGET: 'error.invalidTarget',
};

export function errorKey(code: string): MessageKey {
  return CODE_KEYS[code as ServerErrorCode | ClientErrorCode] ?? 'error.unknown';
}

export function errorCode(err: unknown): string {
  return err instanceof ApiError ? err.code : 'UNKNOWN';
}

/** The message to show a person for any failure. */
export function errorMessage(err: unknown): string {
  const code = errorCode(err);
  if (code === 'VALIDATION_FAILED' && err instanceof ApiError && err.details) {
    return t('error.validationFields', { fields: Object.keys(err.details).join(', ') });
  }
  if (code === 'SLOW_MODE' && err instanceof ApiError && err.details?.retryAfterSecs !== undefined) {
    return t('chat.slowWait', { secs: Math.max(1, Math.ceil(Number(err.details.retryAfterSecs))) });
  }
  return t(errorKey(code));
}
