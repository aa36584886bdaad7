import { describe, expect, it } from 'vitest';

import { ApiError } from '../src/api/client';
import { errorKey, errorMessage } from '../src/errors';
import { setLang } from '../src/i18n';

const err = (code: string, details?: Record<string, unknown>) =>
  new ApiError(409, { code, message: 'server text', details });

describe('error code → message', () => {
  it('maps every code a person can meet to its own message', () => {
    const codes = [
      'ROOM_FULL', 'ROOM_ENDED', 'KICKED', 'ROOM_NOT_FOUND', 'NOT_HOST', 'NOT_A_PARTICIPANT',
      'PARTICIPANT_NOT_FOUND', 'CANNOT_KICK_SELF', 'INVALID_CREDENTIALS', 'USERNAME_TAKEN',
      'EMAIL_TAKEN', 'VALIDATION_FAILED', 'RATE_LIMITED', 'TOKEN_EXPIRED', 'INVALID_TOKEN',
      'UNAUTHENTICATED', 'SERVICE_UNAVAILABLE', 'NETWORK_ERROR', 'TIMEOUT', 'REALTIME_OFFLINE',
    ];
    for (const code of codes) expect(errorKey(code), code).not.toBe('error.unknown');
    expect(errorKey('SOMETHING_NEW')).toBe('error.unknown');
  });

  it('says full, ended and kicked plainly, in the chosen language', () => {
    setLang('en');
    expect(errorMessage(err('ROOM_FULL'))).toMatch(/full/);
    expect(errorMessage(err('ROOM_ENDED'))).toMatch(/ended/);
    expect(errorMessage(err('KICKED'))).toMatch(/removed/);
    setLang('vi');
    expect(errorMessage(err('ROOM_FULL'))).toMatch(/đầy/);
    expect(errorMessage(err('ROOM_ENDED'))).toMatch(/kết thúc/);
    setLang('en');
  });

  it('never shows the server text, and names invalid fields', () => {
    expect(errorMessage(err('ROOM_FULL'))).not.toContain('server text');
    expect(errorMessage(err('VALIDATION_FAILED', { title: ['too long'] }))).toContain('title');
    expect(errorMessage(new Error('boom'))).toBe('Something went wrong. Try again.');
  });
});
