// Audio and video of the room this page is in: through the server's SFU (docs/SFU.md), or
// in mesh mode browser to browser (mesh.ts). Both are a MediaTransport; the UI only reads
// the signals below.
//
// * Entering a room asks for the microphone and camera (both, else each alone; refusals are
//   explained, and a person with neither still receives everyone).
// * Every time the socket (re)enters the room (`socketJoin`: first entry, re-join after a
//   reconnect) a new SFU session starts: `sfu:join` → RTCPeerConnection → our offer → the
//   server's answer, then the server's offers as people come and go (negotiation.ts).
// * A socket lost with a connected session (the network went away, or the socket stopped
//   answering: `checkConnection` on a network change or a broken connection): the session
//   stays, its media carrying on as it can, and the next socket takes the server's side back
//   (`sfu:resume` with the join ack's `sessionId`), so nobody sees our tiles go. Refused (the
//   server's grace ran out, another tab took over): a new session starts.
// * `sfu:closed`: replaced by another tab (stop, offer to take it back), kicked / room ended
//   (the room store leaves the page), connection failed / server shutting down (start again
//   with backoff while still in the room).
// * Mic and camera buttons switch `track.enabled` at once AND tell the server, which stops
//   forwarding and tells everyone (`isMuted` / `isVideoOff` in the room state, which then
//   keeps the tracks in step, also after a re-join).
// * Audio-only (a toggle, remembered in localStorage): the server stops sending us video
//   (`sfu:prefs {video:false}`, again for every new session); in mesh mode every connection's
//   video transceivers stop receiving. Our uplink stays within the server's budget
//   (`uplinkKbps`): our video senders are capped (quality.ts), in mesh mode per peer.
// * Mesh mode: the same local media and tiles; every socket (re)join keeps the connections
//   that are up and opens again the others; the room's participants decide who we connect to.
//   The server relays to every tab of a user, so tabs of this browser agree over a
//   BroadcastChannel that the newest one holds the media (the others show "use them here").
import { batch, effect, signal, untracked } from '@preact/signals';
import { rtcConfig } from './iceConfig';

import { api } from '../api/client';
import type { MessageKey } from '../i18n';
import { ClientEvent, ServerEvent, type MeshSignalIn, type SfuClosed } from '../realtime/events';
import { checkConnection, connection, onServer, request } from '../realtime/socket';
import { loadMeta } from '../state/lobbyStore';
import { currentRoom, roomPhase, setMuted, setVideoOff, socketJoin } from '../state/roomStore';
import { currentUserId } from '../state/session';
import { AudioLevels } from './audioLevels';
import { acquireLocalMedia, mediaNoticeKey, publishes, type LocalAccess } from './devices';
import { MeshSession, type MeshSignalKind } from './mesh';
import { SfuSession } from './negotiation';
import { capVideoSenders, redFirst, simulcastEncodings, videoCap } from './quality';
import { startQualityMonitor } from './qualityMonitor';
import { mark, marks } from './timeline';
import { sameRemoteMap, type MediaTransport, type RemoteMap } from './tracks';

export type MediaPhase =
  /** Not in a room. */
  | 'off'
  /** Asking for the camera/microphone, or joining the SFU. */
  | 'starting'
  /** Negotiated; ICE/DTLS under way. */
  | 'connecting'
  | 'connected'
  /** Lost (socket down, connection failed): a new session starts when possible. */
  | 'reconnecting'
  /** Another tab of ours took the media over. */
  | 'replaced'
  /** No media on this page: mesh mode, or no WebRTC in this browser. */
  | 'unavailable';

export const mediaPhase = signal<MediaPhase>('off');
/** Our camera/microphone (null: none, or not yet). */
export const localStream = signal<MediaStream | null>(null);
export const localAccess = signal<LocalAccess | null>(null);
/** Why media is limited or missing, shown above the tiles. */
export const mediaNotice = signal<MessageKey | null>(null);
/** What the server's media mode means for this room (mesh: the others see your IP address). */
export const mediaModeNotice = signal<MessageKey | null>(null);
/** Remote tracks by publisher user id. */
export const remoteMedia = signal<RemoteMap<MediaStreamTrack>>({});
/** User ids (ours included) whose audio level says they are speaking. */
export const speaking = signal<ReadonlySet<string>>(new Set());
/** The browser refused to start remote audio without a gesture: show "enable sound". */
export const audioBlocked = signal(false);
/** The SFU paused the video it sends us: our downlink loses packets (audio first). */
export const videoPaused = signal(false);
/** Receive no video at all (saves the downlink); remembered for the next rooms. */
export const AUDIO_ONLY_KEY = 'talkconnect.audioOnly';
export const audioOnly = signal(readFlag(AUDIO_ONLY_KEY));

function readFlag(key: string): boolean {
  try {
    return globalThis.localStorage?.getItem(key) === '1';
  } catch {
    return false;
  }
}

const MAX_RESTART_DELAY_MS = 10000;
const LEAVE_WAIT_MS = 1500;

let room: string | null = null;
let local: Promise<void> | null = null;
let session: MediaTransport | null = null;
/** The socket-join epoch the current session belongs to. */
let sessionEpoch = -1;
/** Bumped by every start and stop: a slower, older start gives up when it sees a newer one. */
let generation = 0;
/** The server holds a session of ours on this socket (leave it before joining again). */
let serverSession = false;
/** The server's id of our SFU session (`sfu:resume` names it); null without one. */
let sessionId: string | null = null;
/** The socket was lost while the SFU session was up: the next socket resumes it. */
let suspended = false;
/** Sessions resumed on a new socket (tests). */
let resumes = 0;
/** Server events that came while our `sfu:join` was out: replayed into the new session. */
let joining: { gen: number; events: (() => void)[] } | null = null;
let leaveWaiter: (() => void) | null = null;
let restartTimer: ReturnType<typeof setTimeout> | undefined;
let restartAttempts = 0;
let meshMode = false;
/** Mesh messages that came before our mesh session was ready (local media still starting). */
let meshInbox: [MeshSignalKind, MeshSignalIn][] = [];
const MESH_INBOX_MAX = 500;
const starting = new Set<MediaPhase>(['starting', 'reconnecting']);
/** Tabs of this browser: "I hold the media of room X now" (mesh mode). */
const tabs = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('talkconnect.mesh-media') : null;
const MESH_EVENTS = {
  offer: ClientEvent.meshOffer,
  answer: ClientEvent.meshAnswer,
  candidate: ClientEvent.meshCandidate,
} as const;

/** A mic/camera switch on its way to the server: the track follows it, not the older state. */
const pendingMuted = signal<boolean | null>(null);
const pendingVideoOff = signal<boolean | null>(null);

const levels = new AudioLevels((set) => (speaking.value = set));
const audioElements = new Set<HTMLAudioElement>();

/** Starts following the room store (once, at start). */
export function startMedia(): void {
  // The socket's join from before a dropped connection: after the reconnect the socket is in
  // no room until its re-join is answered, and a session asked for before that is refused.
  let joinBeforeDrop: number | null = null;
  effect(() => {
    const phase = roomPhase.value;
    const roomId = currentRoom.value?.id ?? null;
    const joined = socketJoin.value;
    const live = connection.value === 'connected';
    if (!live) joinBeforeDrop = joined?.epoch ?? null;
    const current = joined && joined.epoch !== joinBeforeDrop ? joined : null;
    const epoch = live && current && current.roomId === roomId ? current.epoch : null;
    untracked(() => follow(phase === 'in' ? roomId : null, epoch));
  });
  // Tracks follow the room state (isMuted / isVideoOff), also after a snapshot or re-join;
  // a switch still on its way wins (a mute takes effect at once, whatever else changes).
  effect(() => {
    const stream = localStream.value;
    const me = currentRoom.value?.participants.find((p) => p.userId === currentUserId());
    if (!stream || !me) return;
    const muted = pendingMuted.value ?? me.isMuted;
    const videoOff = pendingVideoOff.value ?? me.isVideoOff;
    stream.getAudioTracks().forEach((t) => (t.enabled = !muted));
    stream.getVideoTracks().forEach((t) => (t.enabled = !videoOff));
    untracked(() => {
      session?.setSending('audio', !muted);
      session?.setSending('video', !videoOff);
    });
  });
  // Mesh: one connection per other participant of the room.
  effect(() => {
    const ids = currentRoom.value?.participants.map((p) => p.userId) ?? [];
    untracked(() => session instanceof MeshSession && session.sync(ids));
  });
  // Speaking indicators: our microphone and every remote audio track.
  effect(() => {
    const watch = new Map<string, MediaStreamTrack>();
    const me = currentUserId();
    const mic = localStream.value?.getAudioTracks()[0];
    if (me && mic) watch.set(me, mic);
    for (const [userId, tracks] of Object.entries(remoteMedia.value)) {
      if (tracks.audio) watch.set(userId, tracks.audio);
    }
    levels.sync(watch);
  });
  startQualityMonitor({
    connections: () =>
      session instanceof SfuSession
        ? [session.pc as RTCPeerConnection]
        : session instanceof MeshSession
          ? [...session.peers.values()].map((p) => p.pc as RTCPeerConnection)
          : [],
    remote: () => remoteMedia.value,
    self: () => currentUserId() ?? null,
    expecting: (userId) => {
      const p = currentRoom.value?.participants.find((x) => x.userId === userId);
      return { audio: !!p && !p.isMuted, video: !!p && !p.isVideoOff && !audioOnly.value };
    },
  });
  onServer(ServerEvent.sfuOffer, (p) => deliver(p.roomId, (s) => s.handleOffer(p.sdp, p.tracks)));
  onServer(ServerEvent.sfuAnswer, (p) => deliver(p.roomId, (s) => s.handleAnswer(p.sdp, p.tracks)));
  onServer(ServerEvent.sfuCandidate, (p) => {
    const { roomId, ...candidate } = p;
    deliver(roomId ?? room, (s) => s.handleCandidate(candidate));
  });
  onServer(ServerEvent.sfuConnected, (p) => {
    if (p.roomId !== room || !session) return;
    connectedNow();
  });
  onServer(ServerEvent.sfuClosed, closedByServer);
  onServer(ServerEvent.sfuVideo, (p) => {
    if (p.roomId === room && session) videoPaused.value = p.paused;
  });
  onServer(ServerEvent.meshOffer, (p) => meshReceived('offer', p));
  onServer(ServerEvent.meshAnswer, (p) => meshReceived('answer', p));
  onServer(ServerEvent.meshCandidate, (p) => meshReceived('candidate', p));
  tabs?.addEventListener('message', (e: MessageEvent<{ roomId?: unknown }>) => anotherTabTookOver(e.data?.roomId));
  watchNetwork();
  exposeForTests();
}

/** Where we should be: `roomId` (null = no room), the socket inside it at `epoch` (null = not). */
function follow(roomId: string | null, epoch: number | null): void {
  if (roomId !== room) {
    stopAll();
    if (!roomId) return;
    room = roomId;
    mediaPhase.value = 'starting';
    local = prepareLocal(roomId);
  }
  if (epoch === null) {
    // Mesh: the media goes browser to browser and carries on while the socket is away.
    if (session instanceof MeshSession) {
      sessionEpoch = -1;
      return;
    }
    if (session instanceof SfuSession && session.connectedOnce && sessionId) {
      // The server keeps its side a while for the next socket (`sfu:resume`).
      if (!suspended) session.suspend();
      suspended = true;
      sessionEpoch = -1;
      return;
    }
    if (session || mediaPhase.value === 'connected' || mediaPhase.value === 'connecting') {
      endSession();
      mediaPhase.value = 'reconnecting';
    }
    // The socket went away: the server dropped its session of ours with it.
    serverSession = false;
    sessionEpoch = -1;
    return;
  }
  if (epoch !== sessionEpoch && mediaPhase.value !== 'replaced') {
    sessionEpoch = epoch;
    if (session instanceof MeshSession) {
      // Back after a reconnect: messages may have been lost meanwhile.
      session.resync();
      session.sync(currentRoom.value?.participants.map((p) => p.userId) ?? []);
      void syncSeatWithDevices();
      return;
    }
    if (suspended && session instanceof SfuSession) {
      void resumeSession(session);
      return;
    }
    void startSession();
  }
}

/** A new socket takes over the server's side of `s`, kept since the last socket was lost;
 * refused, a new session starts. */
async function resumeSession(s: SfuSession): Promise<void> {
  const roomId = room;
  const id = sessionId;
  if (!roomId || !id) return;
  try {
    const ack = await request(ClientEvent.sfuResume, { roomId, sessionId: id });
    if (s !== session) return;
    suspended = false;
    resumes++;
    s.resume(rtcConfig(ack.iceServers).iceServers);
    // What this session receives, said again (a prefs request on the lost socket was lost).
    if (audioOnly.value) void sendReceivePrefs(roomId);
    tilesSent = '';
    if (tileHeights.size > 0) void sendTileHeights();
  } catch (err) {
    if (s !== session) return;
    const code = (err as { code?: string }).code ?? String(err);
    // Lost again: the next socket tries again.
    if (connection.value !== 'connected') return;
    console.info(`[media] session not resumed (${code}); starting a new one`);
    suspended = false;
    // No answer: the server may have handed it to this socket all the same.
    serverSession = code === 'TIMEOUT';
    void startSession();
  }
}

/** Mesh or not, and the camera/microphone: once per room entry. */
async function prepareLocal(roomId: string): Promise<void> {
  const meta = await loadMeta();
  if (room !== roomId) return;
  meshMode = meta?.mediaMode === 'mesh';
  mediaModeNotice.value = meshMode ? 'media.meshMode' : null;
  if (typeof RTCPeerConnection === 'undefined') {
    mediaNotice.value = 'media.noWebrtc';
    mediaPhase.value = 'unavailable';
    return;
  }
  const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
  const got = await acquireLocalMedia<MediaStreamTrack, MediaStream>(md?.getUserMedia ? (c) => md.getUserMedia(c) : null);
  if (room !== roomId) {
    got.stream?.getTracks().forEach((t) => t.stop());
    return;
  }
  mark('localMedia');
  batch(() => {
    localStream.value = got.stream;
    localAccess.value = got.access;
    mediaNotice.value = mediaNoticeKey(got.access);
  });
}

async function startSession(): Promise<void> {
  clearTimeout(restartTimer);
  restartTimer = undefined;
  endSession();
  const gen = ++generation;
  const roomId = room;
  if (!roomId || !local || mediaPhase.value === 'unavailable') return;
  if (mediaPhase.value !== 'reconnecting') mediaPhase.value = 'starting';
  await local;
  if (gen !== generation || (mediaPhase.value as MediaPhase) === 'unavailable') return;
  const access = localAccess.value;
  const stream = localStream.value;
  const publish = !!access && publishes(access) && !!stream;
  if (meshMode) return startMesh(gen, publish ? stream : null);
  try {
    if (serverSession) await leaveServerSession(roomId);
    if (gen !== generation) return;
    joining = { gen, events: [] };
    const ack = await request(ClientEvent.sfuJoin, { roomId, publish });
    serverSession = true;
    if (gen !== generation) return;
    sessionId = ack.sessionId ?? null;
    mark('sfuJoinAck');
    const pc = new RTCPeerConnection(rtcConfig(ack.iceServers));
    const s: SfuSession = new SfuSession(
      pc,
      {
        offer: async (sdp) => void (await request(ClientEvent.sfuOffer, { sdp })),
        answer: async (sdp) => void (await request(ClientEvent.sfuAnswer, { sdp })),
        candidate: async (c) =>
          void (await request(ClientEvent.sfuCandidate, c as Parameters<typeof request<'sfu:candidate'>>[1])),
      },
      {
        onRemoteChange: () => s === session && refreshRemote(),
        onFailure: (reason) => s === session && void sessionFailed(s, reason),
        onConnectionState: (state) => {
          if (s !== session) return;
          if (state === 'connected') connectedNow();
          // Repairing it needs the signaling: is the socket still there?
          else if (state === 'disconnected' || state === 'failed') void checkConnection();
        },
      },
      currentUserId() ?? undefined,
    );
    session = s;
    // Listen-only: nothing to connect until someone publishes (the server offers then).
    mediaPhase.value = publish ? 'connecting' : 'connected';
    if (publish && stream) {
      const layers = (track: MediaStreamTrack) =>
        ack.simulcast && track.kind === 'video' ? simulcastEncodings(track.getSettings().height) : undefined;
      // Redundant audio where the server asks for it and the browser has it.
      const codecs = (track: MediaStreamTrack) =>
        ack.audioRed && track.kind === 'audio' ? redFirst(RTCRtpReceiver.getCapabilities?.('audio')?.codecs) : undefined;
      s.publish(stream.getTracks(), stream, layers, codecs);
      if (ack.uplinkKbps) void capVideoSenders(pc, videoCap(ack.uplinkKbps, 1));
    }
    // A new session receives video: say again that we want none.
    if (audioOnly.value) void sendReceivePrefs(roomId);
    tilesSent = '';
    if (tileHeights.size > 0) void sendTileHeights();
    const buffered = joining.events;
    joining = null;
    buffered.forEach((replay) => replay());
    void syncSeatWithDevices();
  } catch (err) {
    if (joining?.gen === gen) joining = null;
    const code = (err as { code?: string }).code ?? 'join failed';
    // No answer: the server may have joined us all the same.
    if (code === 'TIMEOUT') serverSession = true;
    if (gen !== generation) return;
    if (code === 'WRONG_MEDIA_MODE') {
      // The server switched to mesh mode since /api/meta was read.
      meshMode = true;
      mediaModeNotice.value = 'media.meshMode';
      void startSession();
      return;
    }
    restartLater(code);
  }
}

/** Mesh mode: connections to everyone else in the room, signaled over `webrtc:*`. */
async function startMesh(gen: number, stream: MediaStream | null): Promise<void> {
  try {
    const { iceServers, uplinkKbps } = await api.iceServers();
    if (gen !== generation) return;
    const me = currentRoom.value?.participants.find((p) => p.userId === currentUserId());
    const mesh: MeshSession = new MeshSession({
      self: currentUserId() ?? '',
      iceServers,
      local: stream ? { tracks: stream.getTracks(), stream } : null,
      sending: {
        audio: !(pendingMuted.value ?? me?.isMuted ?? false),
        video: !(pendingVideoOff.value ?? me?.isVideoOff ?? false),
      },
      send: async (kind, targetUserId, signal) => void (await request(MESH_EVENTS[kind], { targetUserId, ...signal })),
      receiveVideo: !audioOnly.value,
      uplinkKbps,
      onRemoteChange: () => session === mesh && refreshRemote(),
    });
    session = mesh;
    tabs?.postMessage({ roomId: room });
    // Connected to the room; each connection's own state shows in its tile's media.
    mediaPhase.value = 'connected';
    mesh.sync(currentRoom.value?.participants.map((p) => p.userId) ?? []);
    for (const [kind, msg] of meshInbox.splice(0)) mesh.receive(kind, msg);
    void syncSeatWithDevices();
  } catch (err) {
    if (gen !== generation) return;
    restartLater((err as { code?: string }).code ?? 'mesh start failed');
  }
}

function meshReceived(kind: MeshSignalKind, msg: MeshSignalIn): void {
  if (!room || msg.roomId !== room) return;
  if (session instanceof MeshSession) session.receive(kind, msg);
  else if (starting.has(mediaPhase.value) && meshInbox.length < MESH_INBOX_MAX) {
    // Our session is still starting (camera prompt, /api/ice-servers): kept for it.
    meshInbox.push([kind, msg]);
  }
}

/** Another tab of this browser took the room's media (mesh mode). */
function anotherTabTookOver(roomId: unknown): void {
  if (roomId !== room || !(session instanceof MeshSession)) return;
  endSession();
  meshInbox = [];
  mediaPhase.value = 'replaced';
}

/** The server forwards what it forwarded before only if told again (a new session starts
 * unmuted), and a person without a microphone or camera shows as muted / camera off. */
async function syncSeatWithDevices(): Promise<void> {
  const me = currentRoom.value?.participants.find((p) => p.userId === currentUserId());
  const access = localAccess.value;
  if (!me || !access) return;
  const changes: Promise<void>[] = [];
  if (me.isMuted || access.audio !== 'ok') changes.push(setMuted(true));
  if (me.isVideoOff || access.video !== 'ok') changes.push(setVideoOff(true));
  await Promise.allSettled(changes);
}

/** Ends the server's session on this socket and waits for its last event (`sfu:closed
 * {reason:left}`), so nothing of the old session reaches the new one. */
async function leaveServerSession(roomId: string): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    leaveWaiter = resolve;
    setTimeout(resolve, LEAVE_WAIT_MS);
  });
  try {
    await request(ClientEvent.sfuLeave, { roomId });
    await closed;
  } catch {
    // Not joined any more: nothing to wait for.
  } finally {
    leaveWaiter = null;
    serverSession = false;
  }
}

function deliver(roomId: string | null | undefined, apply: (s: SfuSession) => void): void {
  if (!roomId || roomId !== room) return;
  if (joining) {
    joining.events.push(() => session instanceof SfuSession && apply(session));
    return;
  }
  if (session instanceof SfuSession) apply(session);
}

function closedByServer(p: SfuClosed): void {
  if (p.roomId !== room) return;
  if (p.reason === 'left') {
    // Our own leave (or a re-join on this socket): only the waiter cares.
    leaveWaiter?.();
    return;
  }
  if (joining) return; // The previous session's end, while the next one is being set up.
  serverSession = false;
  endSession();
  switch (p.reason) {
    case 'replaced':
      mediaPhase.value = 'replaced';
      break;
    case 'kicked':
    case 'roomEnded':
      // The room store hears it too and leaves the page.
      mediaPhase.value = 'off';
      break;
    default:
      restartLater(p.reason);
  }
}

/** A step of session `s` failed. Signaling that got no answer may mean a dead socket: a
 * connected session is kept while that is checked (a dead socket is replaced, and the new one
 * resumes the session). Anything else, or a socket that answers: a new session. */
async function sessionFailed(s: SfuSession, reason: string): Promise<void> {
  const signaling = reason === 'TIMEOUT' || reason === 'REALTIME_OFFLINE';
  if (signaling && s.connectedOnce && sessionId) {
    await checkConnection();
    if (s !== session || suspended || connection.value !== 'connected') return;
  }
  restartLater(reason);
}

function connectedNow(): void {
  restartAttempts = 0;
  mark('connected');
  if (mediaPhase.value === 'connecting' || mediaPhase.value === 'reconnecting') mediaPhase.value = 'connected';
}

/** Starts a new session after a pause that grows with each failure in a row. */
function restartLater(reason: string): void {
  if (!room || restartTimer) return;
  endSession();
  mediaPhase.value = 'reconnecting';
  const delay = Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** restartAttempts);
  restartAttempts++;
  console.info(`[media] session ended (${reason}); again in ${delay} ms`);
  restartTimer = setTimeout(() => {
    restartTimer = undefined;
    if (room && sessionEpoch >= 0 && connection.value === 'connected') void startSession();
  }, delay);
}

/** Audio-only on or off: remembered, and applied to the session at once. */
export async function setAudioOnly(on: boolean): Promise<void> {
  audioOnly.value = on;
  try {
    globalThis.localStorage?.setItem(AUDIO_ONLY_KEY, on ? '1' : '0');
  } catch {
    // Private mode: this page still follows it.
  }
  if (session instanceof MeshSession) session.setReceiveVideo(!on);
  else if (session instanceof SfuSession && room) await sendReceivePrefs(room);
}

/** The height in device pixels at which each remote person's video is shown: the SFU sends a
 * simulcast publisher's smallest layer that is at least that tall. */
const tileHeights = new Map<string, number>();
let tilesTimer: ReturnType<typeof setTimeout> | undefined;
let tilesSent = '';

/** A remote video tile was shown at `height` device pixels (`null`: no longer shown). Sent
 * to the SFU 300 ms after the last change, when something changed. */
export function reportTileHeight(userId: string, height: number | null): void {
  if (height === null) tileHeights.delete(userId);
  else tileHeights.set(userId, Math.max(0, Math.round(height)));
  clearTimeout(tilesTimer);
  tilesTimer = setTimeout(() => void sendTileHeights(), 300);
}

async function sendTileHeights(): Promise<void> {
  if (!(session instanceof SfuSession) || !room) return;
  const tiles = Object.fromEntries(tileHeights);
  const key = JSON.stringify(tiles);
  if (key === tilesSent) return;
  tilesSent = key;
  try {
    await request(ClientEvent.sfuPrefs, { roomId: room, tiles });
  } catch (err) {
    tilesSent = '';
    console.info(`[media] sfu:prefs tiles not applied (${(err as { code?: string }).code ?? String(err)})`);
  }
}

async function sendReceivePrefs(roomId: string): Promise<void> {
  try {
    await request(ClientEvent.sfuPrefs, { roomId, video: !audioOnly.value });
  } catch (err) {
    // Not joined (yet): the next session sends it again.
    console.info(`[media] sfu:prefs not applied (${(err as { code?: string }).code ?? String(err)})`);
  }
}

/** "Use camera and microphone here" after another tab took them. */
export function takeMediaBack(): void {
  if (!room || mediaPhase.value !== 'replaced') return;
  mediaPhase.value = 'starting';
  restartAttempts = 0;
  if (sessionEpoch >= 0) void startSession();
}

function refreshRemote(): void {
  if (!session) return;
  const next = session.remote();
  if (!sameRemoteMap(next, remoteMedia.value)) remoteMedia.value = next;
}

function endSession(): void {
  generation++;
  joining = null;
  sessionId = null;
  suspended = false;
  session?.close();
  session = null;
  videoPaused.value = false;
  if (Object.keys(remoteMedia.value).length > 0) remoteMedia.value = {};
}

function stopAll(): void {
  clearTimeout(restartTimer);
  restartTimer = undefined;
  restartAttempts = 0;
  endSession();
  localStream.value?.getTracks().forEach((t) => t.stop());
  meshInbox = [];
  batch(() => {
    localStream.value = null;
    localAccess.value = null;
    mediaNotice.value = null;
    mediaModeNotice.value = null;
    audioBlocked.value = false;
    mediaPhase.value = 'off';
  });
  room = null;
  local = null;
  sessionEpoch = -1;
  // Leaving the room (room:leave, kick, end) closes the server's session too.
  serverSession = false;
}

/** Our microphone on/off: the track at once, then the server (and through it, everyone). On
 * failure the track goes back to what the server has. */
export async function toggleMic(): Promise<void> {
  const me = currentRoom.value?.participants.find((p) => p.userId === currentUserId());
  if (!me) return;
  pendingMuted.value = !me.isMuted;
  try {
    await setMuted(!me.isMuted);
  } finally {
    pendingMuted.value = null;
  }
}

export async function toggleCamera(): Promise<void> {
  const me = currentRoom.value?.participants.find((p) => p.userId === currentUserId());
  if (!me) return;
  pendingVideoOff.value = !me.isVideoOff;
  try {
    await setVideoOff(!me.isVideoOff);
  } finally {
    pendingVideoOff.value = null;
  }
}

/** An <audio> element of a remote participant: started now, or after a gesture. */
export function registerAudio(el: HTMLAudioElement): () => void {
  audioElements.add(el);
  playAudio(el);
  return () => audioElements.delete(el);
}

export function playAudio(el: HTMLAudioElement): void {
  el.play().then(
    () => {
      if (audioBlocked.value && [...audioElements].every((a) => !a.paused)) audioBlocked.value = false;
    },
    (err: unknown) => {
      // NotAllowedError: autoplay needs a gesture (mobile Safari, Chrome without interaction).
      if ((err as { name?: string })?.name === 'NotAllowedError') audioBlocked.value = true;
    },
  );
}

/** The "enable sound" button (a user gesture): start every remote audio and the meters. */
export function unlockAudio(): void {
  levels.resume();
  audioBlocked.value = false;
  audioElements.forEach((el) => playAudio(el));
}

// A first tap or key anywhere also lets the audio meters run (AudioContext starts suspended).
if (typeof document !== 'undefined') {
  const wake = () => levels.resume();
  document.addEventListener('pointerdown', wake, { capture: true, passive: true });
  document.addEventListener('keydown', wake, { capture: true });
}

/** For the browser tests and the benchmark: the live peer connection(s) and the timestamps. */
/** A network switch (Wi-Fi → cellular, a new address) restarts the SFU session's ICE at once,
 * before the connection notices it lost its path. */
function watchNetwork(): void {
  if (typeof window === 'undefined') return;
  const changed = () => {
    if (session instanceof SfuSession) session.networkChanged();
    // The socket may have gone with the old network.
    void checkConnection();
  };
  window.addEventListener('online', changed);
  const info = (navigator as Navigator & { connection?: EventTarget }).connection;
  info?.addEventListener?.('change', changed);
}

function exposeForTests(): void {
  if (typeof window === 'undefined') return;
  (window as unknown as { __talkconnect: object }).__talkconnect = {
    /** The SFU's peer connection (null in mesh mode). */
    get pc() {
      return session instanceof SfuSession ? session.pc : null;
    },
    /** Mesh mode: the peer connection with each other participant, by user id. */
    get peers() {
      return session instanceof MeshSession
        ? Object.fromEntries([...session.peers].map(([id, p]) => [id, p.pc]))
        : {};
    },
    get phase() {
      return mediaPhase.value;
    },
    /** ICE restarts the SFU session offered. */
    get restarts() {
      return session instanceof SfuSession ? session.restarts : 0;
    },
    /** SFU sessions taken over by a new socket (`sfu:resume`). */
    get resumes() {
      return resumes;
    },
    get remote() {
      return Object.fromEntries(
        Object.entries(remoteMedia.value).map(([id, t]) => [id, { audio: t.audio?.id ?? null, video: t.video?.id ?? null }]),
      );
    },
    get speaking() {
      return [...speaking.value];
    },
    levels: () => levels.levels(),
    marks,
  };
}
