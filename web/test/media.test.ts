import { describe, expect, it, vi } from 'vitest';

import { acquireLocalMedia, classifyMediaError, mediaNoticeKey, publishes } from '../src/media/devices';
import { SfuSession, type PeerLike, type SignalSender } from '../src/media/negotiation';
import { FakePc } from './fakePc';
import { DEFAULT_SPEAKING, SILENT, nextSpeaking, rmsLevel, smooth, type SpeakingState } from '../src/media/speaking';
import { gridColumns, publisherOf, remoteTracksFrom, sameRemoteMap, tileView } from '../src/media/tracks';
import type { SfuTrackInfo } from '../src/realtime/events';

const label = (mid: string, userId: string, kind: 'audio' | 'video'): SfuTrackInfo => ({
  mid,
  userId,
  kind,
  trackId: `${userId}-${kind}-${mid}`,
});

describe('track → participant mapping', () => {
  const labels = [label('2', 'alice', 'audio'), label('3', 'alice', 'video'), label('4', 'bob', 'audio')];

  it('names the publisher from the server list, else from the stream id', () => {
    expect(publisherOf('3', labels, 'ignored')).toBe('alice');
    expect(publisherOf('9', labels, 'carol')).toBe('carol');
    expect(publisherOf(null, labels, null)).toBeNull();
  });

  it('groups received tracks by publisher, skipping our own transceivers and unlisted m-lines', () => {
    const receivers = [
      { mid: '0', track: 'own-mic', kind: 'audio' as const, sending: true },
      { mid: '1', track: 'own-cam', kind: 'video' as const, sending: true },
      { mid: '2', track: 'a-mic', kind: 'audio' as const },
      { mid: '3', track: 'a-cam', kind: 'video' as const },
      { mid: '4', track: 'b-mic', kind: 'audio' as const },
      // A departed publisher's m-line: still in the SDP (inactive), no longer listed.
      { mid: '5', track: 'gone-cam', kind: 'video' as const, streamId: 'dave' },
      { mid: null, track: 'unnegotiated', kind: 'video' as const },
    ];
    expect(remoteTracksFrom(receivers, labels)).toEqual({
      alice: { audio: 'a-mic', video: 'a-cam' },
      bob: { audio: 'b-mic' },
    });
  });

  it('falls back to msid stream ids before the first list, and never maps ourselves', () => {
    const receivers = [
      { mid: '2', track: 'a-mic', kind: 'audio' as const, streamId: 'alice' },
      { mid: '3', track: 'me-cam', kind: 'video' as const, streamId: 'me' },
      { mid: '4', track: 'x', kind: 'video' as const, streamId: null },
    ];
    expect(remoteTracksFrom(receivers, null, 'me')).toEqual({ alice: { audio: 'a-mic' } });
  });

  it('compares maps by the tracks they hold', () => {
    expect(sameRemoteMap({ a: { audio: 1 } }, { a: { audio: 1 } })).toBe(true);
    expect(sameRemoteMap({ a: { audio: 1 } }, { a: { audio: 2 } })).toBe(false);
    expect(sameRemoteMap({ a: { audio: 1 } }, { a: { audio: 1 }, b: {} })).toBe(false);
  });
});

describe('tile state', () => {
  const base = { isMe: false, isVideoOff: false, isMuted: false, hasVideo: true, speaking: false };

  it('shows video only with a track and the camera on', () => {
    expect(tileView(base).showVideo).toBe(true);
    expect(tileView({ ...base, isVideoOff: true })).toMatchObject({ showVideo: false, cameraOffBadge: true });
    expect(tileView({ ...base, hasVideo: false }).showVideo).toBe(false);
  });

  it('shows the initials and an audio-only badge instead of others\' video when we chose audio-only', () => {
    expect(tileView({ ...base, audioOnly: true })).toMatchObject({ showVideo: false, audioOnlyBadge: true });
    expect(tileView({ ...base, audioOnly: true, isVideoOff: true })).toMatchObject({ audioOnlyBadge: false, cameraOffBadge: true });
    expect(tileView({ ...base, audioOnly: true, isMe: true })).toMatchObject({ showVideo: true, audioOnlyBadge: false });
  });

  it('mirrors only our own preview', () => {
    expect(tileView({ ...base, isMe: true }).mirrored).toBe(true);
    expect(tileView(base).mirrored).toBe(false);
  });

  it('never shows a muted person as speaking, and badges the mute', () => {
    expect(tileView({ ...base, speaking: true }).speaking).toBe(true);
    expect(tileView({ ...base, speaking: true, isMuted: true })).toMatchObject({ speaking: false, mutedBadge: true });
  });

  it('lays the grid out for phones and wide screens', () => {
    expect([1, 2, 3, 5].map((n) => gridColumns(n, true))).toEqual([1, 1, 2, 2]);
    expect([1, 2, 4, 5, 9, 10].map((n) => gridColumns(n, false))).toEqual([1, 2, 2, 3, 3, 4]);
  });
});

describe('speaking level smoothing', () => {
  it('measures RMS of byte samples (128 = silence)', () => {
    expect(rmsLevel(new Uint8Array(256).fill(128))).toBe(0);
    const square = Uint8Array.from({ length: 256 }, (_, i) => (i % 2 ? 192 : 64));
    expect(rmsLevel(square)).toBeCloseTo(0.5, 5);
    expect(rmsLevel([])).toBe(0);
  });

  it('rises fast and falls slowly', () => {
    const up = smooth(0, 1, 100, 60, 350);
    const down = smooth(1, 0, 100, 60, 350);
    expect(up).toBeGreaterThan(0.8);
    expect(down).toBeGreaterThan(0.7);
    expect(smooth(0.3, 0.3, 100, 60, 350)).toBeCloseTo(0.3);
  });

  const run = (levels: number[], start: SpeakingState = SILENT) => {
    let state = start;
    const out: boolean[] = [];
    levels.forEach((level, i) => {
      state = nextSpeaking(state, level, (i + 1) * 100, 100);
      out.push(state.speaking);
    });
    return { state, out };
  };

  it('ignores background noise', () => {
    expect(run(Array(30).fill(0.02)).out.every((s) => !s)).toBe(true);
  });

  it('lets a short sound go within about a second', () => {
    const blip = run([0.2, ...Array(14).fill(0)]);
    expect(blip.out[0]).toBe(true);
    expect(blip.out.indexOf(false)).toBeGreaterThan(4); // held through a pause…
    expect(blip.out.indexOf(false)).toBeLessThanOrEqual(12); // …but not for long
  });

  it('turns on with speech and holds through short pauses, then turns off', () => {
    const speech = run([0.2, 0.2, 0.2]);
    expect(speech.out).toEqual([true, true, true]);
    // A 300 ms pause between words: still speaking.
    const pause = run([0, 0, 0], speech.state);
    expect(pause.out.every(Boolean)).toBe(true);
    // Silence for long enough: off, and it stays off.
    const silence = run(Array(20).fill(0), speech.state);
    expect(silence.out.at(-1)).toBe(false);
    expect(silence.state.level).toBeLessThan(DEFAULT_SPEAKING.offThreshold);
  });
});

describe('camera and microphone access', () => {
  const err = (name: string) => Object.assign(new Error(name), { name });
  const stream = (...kinds: string[]) => {
    const tracks: { kind: string; stop: () => void }[] = kinds.map((kind) => ({ kind, stop: vi.fn() }));
    return { tracks, getTracks: () => tracks, addTrack: (t: { kind: string; stop: () => void }) => tracks.push(t) };
  };
  type S = ReturnType<typeof stream>;
  const gum = (rule: (c: MediaStreamConstraints) => S | Error) => async (c: MediaStreamConstraints) => {
    const r = rule(c);
    if (r instanceof Error) throw r;
    return r;
  };

  it('classifies getUserMedia errors', () => {
    expect(classifyMediaError(err('NotAllowedError'))).toBe('denied');
    expect(classifyMediaError(err('NotFoundError'))).toBe('missing');
    expect(classifyMediaError(err('NotReadableError'))).toBe('busy');
    expect(classifyMediaError(new Error('x'))).toBe('error');
  });

  it('gets both at once', async () => {
    const got = await acquireLocalMedia(gum(() => stream('audio', 'video')));
    expect(got.access).toEqual({ audio: 'ok', video: 'ok' });
    expect(mediaNoticeKey(got.access)).toBeNull();
  });

  it('goes audio-only when the camera is refused', async () => {
    const got = await acquireLocalMedia(gum((c) => (c.video ? err('NotAllowedError') : stream('audio'))));
    expect(got.access).toEqual({ audio: 'ok', video: 'denied' });
    expect(got.stream?.tracks.map((t) => t.kind)).toEqual(['audio']);
    expect(mediaNoticeKey(got.access)).toBe('media.cameraDenied');
    expect(publishes(got.access)).toBe(true);
  });

  it('goes listen-only when both are refused or missing', async () => {
    const denied = await acquireLocalMedia(gum(() => err('NotAllowedError')));
    expect(denied).toEqual({ stream: null, access: { audio: 'denied', video: 'denied' } });
    expect(mediaNoticeKey(denied.access)).toBe('media.listenOnlyDenied');
    expect(publishes(denied.access)).toBe(false);
    const none = await acquireLocalMedia(gum(() => err('NotFoundError')));
    expect(mediaNoticeKey(none.access)).toBe('media.listenOnlyMissing');
  });

  it('keeps the camera when only the microphone fails', async () => {
    const got = await acquireLocalMedia(gum((c) => (c.audio ? err('NotFoundError') : stream('video'))));
    expect(got.access).toEqual({ audio: 'missing', video: 'ok' });
    expect(mediaNoticeKey(got.access)).toBe('media.micMissing');
  });

  it('merges the two when each works alone after a failure together', async () => {
    let calls = 0;
    const got = await acquireLocalMedia(
      gum((c) => (++calls === 1 ? err('AbortError') : c.audio ? stream('audio') : stream('video'))),
    );
    expect(got.access).toEqual({ audio: 'ok', video: 'ok' });
    expect(got.stream?.tracks.map((t) => t.kind)).toEqual(['audio', 'video']);
  });

  it('says so on an insecure page', async () => {
    const got = await acquireLocalMedia(null);
    expect(mediaNoticeKey(got.access)).toBe('media.insecure');
  });
});

function harness(options: { offerErrors?: string[] } = {}) {
  const pc = new FakePc();
  const sent: { event: string; payload: unknown }[] = [];
  const offerErrors = [...(options.offerErrors ?? [])];
  const sender: SignalSender = {
    offer: async (sdp) => {
      sent.push({ event: 'offer', payload: sdp });
      const code = offerErrors.shift();
      if (code) throw Object.assign(new Error(code), { code });
    },
    answer: async (sdp) => void sent.push({ event: 'answer', payload: sdp }),
    candidate: async (c) => void sent.push({ event: 'candidate', payload: c.candidate }),
  };
  const hooks = { onRemoteChange: vi.fn(), onFailure: vi.fn(), onConnectionState: vi.fn() };
  const session = new SfuSession(pc as unknown as PeerLike, sender, hooks);
  const tracks = [{ kind: 'audio' }, { kind: 'video' }] as unknown as MediaStreamTrack[];
  return { pc, sent, hooks, session, tracks, offerErrors, events: () => sent.map((s) => s.event) };
}

describe('SFU negotiation', () => {
  it('publishes: offer, answer; our candidates wait for the offer to arrive, theirs for the answer', async () => {
    const h = harness();
    h.session.publish(h.tracks);
    h.pc.candidate('c1'); // gathered before the server has our offer: held
    await h.session.settled();
    expect(h.sent[0]).toEqual({ event: 'offer', payload: 'offer-1' });
    expect(h.events()).toEqual(['offer', 'candidate']);
    h.pc.candidate('c2');
    expect(h.events()).toEqual(['offer', 'candidate', 'candidate']);
    h.session.handleCandidate({ candidate: 's1', sdpMid: '0', sdpMLineIndex: 0 });
    await h.session.settled();
    expect(h.pc.added).toEqual([]); // no server description yet
    h.session.handleAnswer('answer-1', []);
    await h.session.settled();
    expect(h.pc.signalingState).toBe('stable');
    expect(h.pc.added.map((c) => c.candidate)).toEqual(['s1']);
    expect(h.hooks.onFailure).not.toHaveBeenCalled();
  });

  it('answers every server offer and keeps its track list', async () => {
    const h = harness();
    h.session.publish(h.tracks);
    h.session.handleAnswer('answer-1', []);
    const tracks = [label('2', 'alice', 'audio'), label('3', 'alice', 'video')];
    h.session.handleOffer('server-offer-1', tracks);
    await h.session.settled();
    expect(h.events()).toEqual(['offer', 'answer']);
    expect(h.sent[1].payload).toBe('answer-to-server-offer-1');
    expect(h.session.labels).toEqual(tracks);
    expect(h.hooks.onRemoteChange).toHaveBeenCalled();
    h.session.handleOffer('server-offer-2', []);
    await h.session.settled();
    expect(h.events()).toEqual(['offer', 'answer', 'answer']);
    expect(h.session.labels).toEqual([]);
  });

  it('is the polite side of a collision: rolls back, answers, offers again', async () => {
    const h = harness({ offerErrors: ['SFU_NEGOTIATION_IN_PROGRESS'] });
    h.session.publish(h.tracks);
    // The server's offer crossed ours on the wire.
    h.session.handleOffer('server-offer-1', [label('2', 'alice', 'audio')]);
    await h.session.settled();
    expect(h.pc.log).toEqual([
      'local:offer',
      'rollback',
      'remote:offer:server-offer-1',
      'local:answer',
      'local:offer',
    ]);
    expect(h.events()).toEqual(['offer', 'answer', 'offer']);
    expect(h.sent[2].payload).toBe('offer-2');
    h.session.handleAnswer('answer-2', [label('2', 'alice', 'audio')]);
    await h.session.settled();
    expect(h.pc.signalingState).toBe('stable');
    expect(h.hooks.onFailure).not.toHaveBeenCalled();
  });

  it('listens only: answers the server first, then trickles', async () => {
    const h = harness();
    h.session.handleOffer('server-offer-1', [label('0', 'alice', 'audio')]);
    h.pc.candidate('c1');
    await h.session.settled();
    expect(h.events()).toEqual(['answer', 'candidate']);
  });

  it('ignores a late answer when nothing is offered', async () => {
    const h = harness();
    h.session.handleAnswer('stale', []);
    await h.session.settled();
    expect(h.pc.log).toEqual([]);
    expect(h.hooks.onFailure).not.toHaveBeenCalled();
  });

  it('reports errors and a failed connection, and nothing after close', async () => {
    const h = harness({ offerErrors: ['SFU_INTERNAL'] });
    h.session.publish(h.tracks);
    await h.session.settled();
    expect(h.hooks.onFailure).toHaveBeenCalledWith('SFU_INTERNAL');
    h.pc.connectionState = 'failed';
    h.pc.onconnectionstatechange?.();
    expect(h.hooks.onFailure).toHaveBeenLastCalledWith('connectionFailed');
    h.session.close();
    expect(h.pc.closed).toBe(true);
    h.session.handleOffer('late', []);
    await h.session.settled();
    expect(h.events()).toEqual(['offer']);
  });

  it('restarts ICE over its offer when a connected session breaks, instead of ending it', async () => {
    const h = harness();
    h.session.publish(h.tracks);
    h.session.handleAnswer('answer-1', []);
    await h.session.settled();
    h.pc.connectionState = 'connected';
    h.pc.onconnectionstatechange?.();
    h.pc.connectionState = 'failed';
    h.pc.onconnectionstatechange?.();
    await h.session.settled();
    expect(h.pc.log).toContain('restartIce');
    expect(h.events()).toEqual(['offer', 'offer']);
    expect(h.session.restarts).toBe(1);
    expect(h.hooks.onFailure).not.toHaveBeenCalled();
    h.session.close();
  });

  it('a receive-only session restarts on a network change; a server restart makes ours moot', async () => {
    const h = harness();
    h.session.handleOffer('v=0\na=ice-ufrag:first', []);
    await h.session.settled();
    h.pc.connectionState = 'connected';
    h.pc.onconnectionstatechange?.();
    h.session.networkChanged();
    await h.session.settled();
    expect(h.events()).toEqual(['answer', 'offer']);
    expect(h.session.restarts).toBe(1);
    h.session.close();

    // The server offers new credentials while our restart waits for its turn: ours is dropped.
    const g = harness({ offerErrors: ['SFU_NEGOTIATION_IN_PROGRESS'] });
    g.session.handleOffer('v=0\na=ice-ufrag:first', []);
    await g.session.settled();
    g.pc.connectionState = 'connected';
    g.pc.onconnectionstatechange?.();
    g.session.networkChanged();
    await g.session.settled();
    g.session.handleOffer('v=0\na=ice-ufrag:second', []);
    await g.session.settled();
    expect(g.events()).toEqual(['answer', 'offer', 'answer']);
    expect(g.session.restarts).toBe(0);
    expect(g.hooks.onFailure).not.toHaveBeenCalled();
    g.session.close();
  });

  it('after a lost socket, resends the offer the dead socket swallowed and restarts ICE itself', async () => {
    // Our restart offer went out on the dead socket: no answer (TIMEOUT).
    const h = harness();
    h.session.publish(h.tracks);
    h.session.handleAnswer('v=0\na=ice-ufrag:first', []);
    await h.session.settled();
    h.pc.connectionState = 'connected';
    h.pc.onconnectionstatechange?.();
    expect(h.session.connectedOnce).toBe(true);
    h.offerErrors.push('TIMEOUT');
    h.session.networkChanged();
    await h.session.settled();
    expect(h.hooks.onFailure).toHaveBeenCalledWith('TIMEOUT');
    expect(h.pc.signalingState).toBe('have-local-offer');
    h.session.suspend();
    h.pc.connectionState = 'disconnected';
    // A new socket took the session over; the server sent nothing again.
    h.session.resume();
    await h.session.settled();
    expect(h.pc.log.slice(-3)).toEqual(['rollback', 'restartIce', 'local:offer']);
    expect(h.sent[2].payload).toBe('offer-3');
    expect(h.events()).toEqual(['offer', 'offer', 'offer']);
    expect(h.pc.signalingState).toBe('have-local-offer');
    expect(h.session.restarts).toBe(1);
    h.session.close();
  });

  it('after a lost socket, answers the offer the server sends again and leaves the restart to it', async () => {
    const h = harness();
    h.session.handleOffer('v=0\na=ice-ufrag:first', []);
    await h.session.settled();
    h.pc.connectionState = 'connected';
    h.pc.onconnectionstatechange?.();
    h.session.suspend();
    h.pc.connectionState = 'disconnected';
    // On the resume the server sends its restart offer again, before our ack arrives.
    h.session.handleOffer('v=0\na=ice-ufrag:second', []);
    h.session.resume([{ urls: 'stun:example.org' }]);
    await h.session.settled();
    expect(h.events()).toEqual(['answer', 'answer']);
    expect(h.pc.log).not.toContain('restartIce');
    expect(h.session.restarts).toBe(0);

    // Connected and nothing lost: a resume sends nothing.
    const g = harness();
    g.session.handleOffer('v=0\na=ice-ufrag:first', []);
    await g.session.settled();
    g.pc.connectionState = 'connected';
    g.pc.onconnectionstatechange?.();
    g.session.suspend();
    g.session.resume();
    await g.session.settled();
    expect(g.events()).toEqual(['answer']);
    expect(g.hooks.onFailure).not.toHaveBeenCalled();
    h.session.close();
    g.session.close();
  });

  it('labels what it receives for the tiles', async () => {
    const h = harness();
    h.session.publish(h.tracks);
    h.session.handleAnswer('answer-1', []);
    // The server's offer adds alice's two m-lines (the fake adds transceivers by hand).
    h.pc.addTransceiver({ kind: 'audio' });
    h.pc.addTransceiver({ kind: 'video' });
    h.session.handleOffer('server-offer-1', [label('2', 'alice', 'audio'), label('3', 'alice', 'video')]);
    await h.session.settled();
    const map = remoteTracksFrom(h.session.receivers(), h.session.labels);
    expect(Object.keys(map)).toEqual(['alice']);
    expect((map.alice.video as unknown as { id: string }).id).toBe('recv-3');
  });
});
