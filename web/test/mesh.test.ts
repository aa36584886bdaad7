import { describe, expect, it } from 'vitest';

import {
  MeshPeer,
  MeshSession,
  isPolite,
  peerChanges,
  routeSignal,
  type MeshPeerLike,
  type MeshSignalKind,
} from '../src/media/mesh';
import type { MeshSignal } from '../src/realtime/events';
import { FakePc } from './fakePc';

type Sent = { kind: MeshSignalKind; to: string; signal: MeshSignal };

/** A send function that records, and refuses the kinds listed in `refuse` (once each). */
function recorder(refuse: MeshSignalKind[] = []) {
  const sent: Sent[] = [];
  const refusals = [...refuse];
  const send = async (kind: MeshSignalKind, to: string, signal: MeshSignal) => {
    sent.push({ kind, to, signal });
    const i = refusals.indexOf(kind);
    if (i >= 0) {
      refusals.splice(i, 1);
      throw Object.assign(new Error('PARTICIPANT_NOT_FOUND'), { code: 'PARTICIPANT_NOT_FOUND' });
    }
  };
  return { sent, send, kinds: () => sent.map((s) => s.kind) };
}

const tracks = [{ kind: 'audio', id: 'mic' }, { kind: 'video', id: 'cam' }] as unknown as MediaStreamTrack[];
const local = { tracks, stream: {} as MediaStream };
const sendingAll = { audio: true, video: true };

function peer(options: { polite: boolean; refuse?: MeshSignalKind[]; remoteId?: string | null }) {
  const pc = new FakePc(true);
  const rec = recorder(options.refuse);
  const states: string[] = [];
  const p = new MeshPeer(
    'them',
    pc as unknown as MeshPeerLike,
    options.polite,
    rec.send,
    { onRemoteChange: () => {}, onState: () => states.push(pc.connectionState) },
    options.remoteId ?? null,
    'ours',
  );
  p.addLocal(local, sendingAll);
  return { pc, p, ...rec, states };
}

describe('mesh roles and peer sets', () => {
  it('makes exactly one side of each pair polite, the same on both sides', () => {
    expect(isPolite('a', 'b')).toBe(true);
    expect(isPolite('b', 'a')).toBe(false);
    for (const [x, y] of [['u1', 'u2'], ['f0', '0f'], ['same-prefix-1', 'same-prefix-10']]) {
      expect(isPolite(x, y)).not.toBe(isPolite(y, x));
    }
  });

  it('diffs who we are connected to against who is in the room', () => {
    expect(peerChanges(['a', 'b'], ['b', 'c', 'd'])).toEqual({ open: ['c', 'd'], close: ['a'] });
    expect(peerChanges([], [])).toEqual({ open: [], close: [] });
    expect(peerChanges(new Set(['a']), ['a'])).toEqual({ open: [], close: [] });
  });

  it('routes messages to the connection they are meant for', () => {
    const known = { id: 'ours', remoteId: 'theirs' };
    const fresh = { id: 'ours', remoteId: null };
    // No connection with them yet: only a first offer opens one.
    expect(routeSignal(undefined, 'offer', { from: 'x' })).toBe('create');
    expect(routeSignal(undefined, 'offer', { from: 'x', to: 'old' })).toBe('drop');
    expect(routeSignal(undefined, 'candidate', { from: 'x' })).toBe('drop');
    // Ours, and theirs known.
    expect(routeSignal(known, 'answer', { from: 'theirs', to: 'ours' })).toBe('accept');
    expect(routeSignal(known, 'candidate', { from: 'theirs' })).toBe('accept');
    // For a connection of ours that was replaced.
    expect(routeSignal(known, 'answer', { from: 'theirs', to: 'older' })).toBe('drop');
    // Their page reloaded: a first offer from a new connection replaces ours…
    expect(routeSignal(known, 'offer', { from: 'new' })).toBe('replace');
    // …but other words of an unknown connection do not.
    expect(routeSignal(known, 'candidate', { from: 'new' })).toBe('drop');
    expect(routeSignal(known, 'offer', { from: 'new', to: 'ours' })).toBe('drop');
    // We offered and heard nothing back yet: their first word names their side.
    expect(routeSignal(fresh, 'offer', { from: 'theirs' })).toBe('adopt');
    expect(routeSignal(fresh, 'answer', { from: 'theirs', to: 'ours' })).toBe('adopt');
  });
});

describe('mesh negotiation (one connection)', () => {
  it('offers with our connection id; candidates before their description wait for it', async () => {
    const h = peer({ polite: true });
    h.pc.onnegotiationneeded?.();
    await h.p.settled();
    expect(h.sent[0]).toEqual({ kind: 'offer', to: 'them', signal: { from: 'ours', sdp: 'offer-1' } });
    h.p.remoteId = 'theirs';
    h.p.receive('candidate', { from: 'theirs', candidate: { candidate: 'c1' } });
    h.p.receive('candidate', { from: 'theirs', candidate: { candidate: 'c2' } });
    await h.p.settled();
    expect(h.pc.added).toEqual([]);
    h.p.receive('answer', { from: 'theirs', to: 'ours', sdp: 'answer-a' });
    h.p.receive('candidate', { from: 'theirs', candidate: { candidate: 'c3' } });
    await h.p.settled();
    expect(h.pc.added.map((c) => c.candidate)).toEqual(['c1', 'c2', 'c3']);
    expect(h.pc.signalingState).toBe('stable');
    // Our candidates now name their connection.
    h.pc.candidate('mine');
    expect(h.sent.at(-1)).toMatchObject({ kind: 'candidate', signal: { from: 'ours', to: 'theirs' } });
  });

  it('answers an offer, applying the candidates that came first', async () => {
    const h = peer({ polite: false, remoteId: 'theirs' });
    h.p.receive('candidate', { from: 'theirs', candidate: { candidate: 'early' } });
    h.p.receive('offer', { from: 'theirs', sdp: 'offer-x' });
    await h.p.settled();
    expect(h.pc.added.map((c) => c.candidate)).toEqual(['early']);
    expect(h.sent).toEqual([{ kind: 'answer', to: 'them', signal: { from: 'ours', to: 'theirs', sdp: 'answer-to-offer-x' } }]);
    // Both our tracks are sent on the negotiated transceivers, and theirs received.
    expect(Object.keys(h.p.remote()).sort()).toEqual(['audio', 'video']);
  });

  it('glare, polite side: our offer gives way, theirs is answered', async () => {
    const h = peer({ polite: true, remoteId: 'theirs' });
    h.pc.onnegotiationneeded?.();
    h.p.receive('offer', { from: 'theirs', sdp: 'offer-x' });
    await h.p.settled();
    expect(h.kinds()).toEqual(['offer', 'answer']);
    expect(h.pc.log).toContain('rollback');
    expect(h.pc.signalingState).toBe('stable');
    // Their answer to our rolled-back offer comes late: ignored.
    h.p.receive('answer', { from: 'theirs', to: 'ours', sdp: 'late' });
    await h.p.settled();
    expect(h.pc.remoteDescription?.sdp).toBe('offer-x');
  });

  it('glare, impolite side: their offer is ignored, our offer stands', async () => {
    const h = peer({ polite: false, remoteId: 'theirs' });
    h.pc.onnegotiationneeded?.();
    h.p.receive('offer', { from: 'theirs', sdp: 'offer-x' });
    h.p.receive('candidate', { from: 'theirs', candidate: { candidate: 'of-ignored-offer' } });
    await h.p.settled();
    expect(h.kinds()).toEqual(['offer']);
    expect(h.pc.signalingState).toBe('have-local-offer');
    h.p.receive('answer', { from: 'theirs', to: 'ours', sdp: 'answer-b' });
    await h.p.settled();
    expect(h.pc.signalingState).toBe('stable');
    expect(h.pc.remoteDescription?.sdp).toBe('answer-b');
  });

  it('impolite, but our offer never reached them: their offer wins', async () => {
    const h = peer({ polite: false, refuse: ['offer'] });
    h.pc.onnegotiationneeded?.();
    await h.p.settled();
    h.p.remoteId = 'theirs';
    h.p.receive('offer', { from: 'theirs', sdp: 'offer-x' });
    await h.p.settled();
    expect(h.kinds()).toEqual(['offer', 'answer']);
    expect(h.pc.signalingState).toBe('stable');
  });

  it('mute sends nothing (the sender loses its track) and unmute brings it back', async () => {
    const h = peer({ polite: true });
    const audioSender = h.pc.transceivers[0].sender;
    h.p.setSending('audio', false);
    await h.p.settled();
    expect(audioSender.track).toBeNull();
    expect(h.pc.transceivers[1].sender.track).toBe(tracks[1]);
    h.p.setSending('audio', true);
    expect(audioSender.track).toBe(tracks[0]);
  });

  it('listen-only: receive-only transceivers, so the connection still offers and receives', () => {
    const pc = new FakePc(true);
    const p = new MeshPeer('them', pc as unknown as MeshPeerLike, true, recorder().send, {
      onRemoteChange: () => {},
      onState: () => {},
    });
    p.addLocal(null, sendingAll);
    expect(pc.transceivers.map((t) => [t.receiver.track.kind, t.direction])).toEqual([
      ['audio', 'recvonly'],
      ['video', 'recvonly'],
    ]);
  });
});

describe('mesh session (every connection of the page)', () => {
  function session(self = 'me') {
    const pcs: FakePc[] = [];
    const rec = recorder();
    let changes = 0;
    const s = new MeshSession({
      self,
      iceServers: [],
      local,
      sending: { audio: false, video: true },
      send: rec.send,
      onRemoteChange: () => changes++,
      createPeerConnection: () => {
        const pc = new FakePc(true);
        pcs.push(pc);
        return pc as unknown as MeshPeerLike;
      },
    });
    return { s, pcs, ...rec, changes: () => changes };
  }

  it('audio-only: every video transceiver stops receiving (sendonly with our camera, inactive without), then comes back', () => {
    const h = session();
    h.s.setReceiveVideo(false);
    h.s.sync(['me', 'a']);
    const video = () => h.pcs.flatMap((pc) => pc.transceivers.filter((t) => t.receiver.track.kind === 'video').map((t) => t.direction));
    expect(video()).toEqual(['sendonly']);
    h.s.setReceiveVideo(true);
    expect(video()).toEqual(['sendrecv']);

    const pcs: FakePc[] = [];
    const cameraless = new MeshSession({
      self: 'me',
      iceServers: [],
      local: null,
      sending: { audio: false, video: false },
      send: recorder().send,
      receiveVideo: false,
      onRemoteChange: () => {},
      createPeerConnection: () => {
        const pc = new FakePc(true);
        pcs.push(pc);
        return pc as unknown as MeshPeerLike;
      },
    });
    cameraless.sync(['me', 'b']);
    expect(pcs[0].transceivers.map((t) => `${t.receiver.track.kind}:${t.direction}`)).toEqual(['audio:recvonly', 'video:inactive']);
    cameraless.setReceiveVideo(true);
    expect(pcs[0].transceivers[1].direction).toBe('recvonly');
  });

  it('follows the participants: one connection per other person, closed when they go', () => {
    const h = session();
    h.s.sync(['me', 'a', 'b']);
    expect([...h.s.peers.keys()].sort()).toEqual(['a', 'b']);
    const a = h.s.peers.get('a');
    // A muted microphone joins muted: its sender carries nothing.
    expect(h.pcs[0].transceivers[0].sender.track).toBeNull();
    h.s.sync(['me', 'a', 'c']);
    expect([...h.s.peers.keys()].sort()).toEqual(['a', 'c']);
    expect(h.s.peers.get('a')).toBe(a);
    expect(h.pcs[1].closed).toBe(true);
    expect(h.changes()).toBeGreaterThan(0);
    h.s.close();
    expect(h.pcs.every((pc) => pc.closed)).toBe(true);
    expect(h.s.peers.size).toBe(0);
  });

  it('opens a connection for a first offer, replaces it for a new one, drops stale words', async () => {
    const h = session();
    const msg = (kind: MeshSignalKind, m: MeshSignal) =>
      h.s.receive(kind, { ...m, roomId: 'r', senderUserId: 'a', targetUserId: 'me' });
    msg('offer', { from: 'a1', sdp: 'offer-a1' });
    const first = h.s.peers.get('a');
    expect(first?.remoteId).toBe('a1');
    await first?.settled();
    expect(h.sent.at(-1)).toMatchObject({ kind: 'answer', to: 'a', signal: { to: 'a1' } });
    // Their page reloaded: a first offer from a2 replaces the connection.
    msg('offer', { from: 'a2', sdp: 'offer-a2' });
    const second = h.s.peers.get('a');
    expect(second).not.toBe(first);
    expect(first?.isClosed).toBe(true);
    expect(second?.remoteId).toBe('a2');
    // A late candidate of a1 does not reach the new connection.
    msg('candidate', { from: 'a1', to: first?.id, candidate: { candidate: 'old' } });
    await second?.settled();
    expect(h.pcs[1].added).toEqual([]);
    // Our own echo (several tabs of one user) is ignored.
    h.s.receive('offer', { from: 'x', sdp: 's', roomId: 'r', senderUserId: 'me', targetUserId: 'me' });
    expect(h.s.peers.has('me')).toBe(false);
  });

  it('maps the remote media by user id once negotiated', async () => {
    const h = session();
    h.s.receive('offer', { from: 'b1', sdp: 'offer-b1', roomId: 'r', senderUserId: 'b', targetUserId: 'me' });
    expect(h.s.remote()).toEqual({});
    await h.s.peers.get('b')?.settled();
    const remote = h.s.remote();
    expect(Object.keys(remote)).toEqual(['b']);
    expect((remote.b.video as unknown as { id: string }).id).toBe('recv-1');
  });

  it('mic switched on and off reaches every connection', () => {
    const h = session();
    h.s.sync(['a', 'b']);
    h.s.setSending('audio', true);
    expect(h.pcs.map((pc) => pc.transceivers[0].sender.track)).toEqual([tracks[0], tracks[0]]);
    // A connection opened later starts in the current state.
    h.s.setSending('audio', false);
    h.s.sync(['a', 'b', 'c']);
    expect(h.pcs[2].transceivers[0].sender.track).toBeNull();
  });
});
