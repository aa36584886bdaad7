import { describe, expect, it } from 'vitest';

import { ClientEvent, ServerEvent } from '../src/realtime/events';

describe('realtime contract', () => {
  it('names the events of the contract, each once', () => {
    expect(Object.values(ClientEvent).sort()).toEqual(
      [
        'chat:message', 'hand:lower', 'hand:raise', 'media:toggle-mic', 'media:toggle-video',
        'room:join', 'room:kick', 'room:leave',
        'room:cohost', 'room:transfer-host', 'room:hard-mute', 'room:mute-all', 'room:lock',
        'room:update', 'room:report', 'chat:delete',
        'sfu:join', 'sfu:leave', 'sfu:resume', 'sfu:prefs', 'sfu:offer', 'sfu:answer',
        'sfu:candidate', 'conn:ping',
        'webrtc:offer', 'webrtc:answer', 'webrtc:ice-candidate',
      ].sort(),
    );
    expect(Object.values(ServerEvent).sort()).toEqual(
      [
        'chat:message', 'hand:lowered', 'hand:raised', 'media:user-muted', 'media:user-video',
        'room:ended', 'room:list-update', 'room:user-joined', 'room:user-kicked', 'room:user-left',
        'room:participant-updated', 'chat:deleted', 'session:banned',
        'sfu:offer', 'sfu:answer', 'sfu:candidate', 'sfu:connected', 'sfu:closed', 'sfu:video',
        'webrtc:offer', 'webrtc:answer', 'webrtc:ice-candidate',
      ].sort(),
    );
  });
});
