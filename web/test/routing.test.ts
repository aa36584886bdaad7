import { describe, expect, it } from 'vitest';

import { lobbyQuery } from '../src/api/client';
import { noFilters } from '../src/state/lobby';
import { parseRoute, roomPath } from '../src/router';

describe('routes', () => {
  it('knows the lobby and room links', () => {
    expect(parseRoute('/')).toEqual({ name: 'lobby' });
    const id = '6f1c1f4e-3c1b-4b7e-9a55-0d7c4f0e2a10';
    expect(parseRoute(roomPath(id))).toEqual({ name: 'room', roomId: id });
    expect(parseRoute(`/r/${id}/`)).toEqual({ name: 'room', roomId: id });
    expect(parseRoute('/elsewhere')).toEqual({ name: 'notFound' });
  });
});

describe('lobby query', () => {
  it('sends only the filters that are set', () => {
    expect(lobbyQuery(noFilters())).toBe('status=LIVE&limit=50');
    const q = new URLSearchParams(
      lobbyQuery(
        {
          language: 'vi',
          topic: ' Du lịch ',
          q: 'tiếng anh',
          hasSeat: true,
          level: 'beginner',
          micRequired: 'true',
          sort: 'popular',
        },
        'next-page',
      ),
    );
    expect(Object.fromEntries(q)).toEqual({
      status: 'LIVE',
      limit: '50',
      language: 'vi',
      topic: 'Du lịch',
      q: 'tiếng anh',
      hasSeat: 'true',
      level: 'beginner',
      micRequired: 'true',
      sort: 'popular',
      cursor: 'next-page',
    });
  });
});
