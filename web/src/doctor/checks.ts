// The /doctor page's checks, with their side effects: browser APIs, the live socket, and the
// media paths timed over a data channel — to the server's probe (SFU mode) or, for the relay
// in mesh mode, between two local connections through TURN. Verdicts come from report.ts.
import { api, ApiError } from '../api/client';
import type { IceServerConfig } from '../realtime/events';
import { realtimeTransport } from '../realtime/socket';
import { classifyMediaError, type DeviceProblem } from '../media/devices';
import type { DeviceFindings, MediaPath, Permission, ProbeOutcome } from './report';

/** Pings per path; the verdict is their median. */
const PINGS = 5;
const PING_TIMEOUT_MS = 3000;
const GATHER_TIMEOUT_MS = 5000;
/** ICE + DTLS + SCTP: over TCP or a relay this takes a few seconds. */
const OPEN_TIMEOUT_MS = 15000;
/** How long the socket gets to upgrade from polling to WebSocket. */
const UPGRADE_WAIT_MS = 6000;
/** The text that tells the server's probe we are done (sfu::PROBE_BYE). */
const BYE = 'bye';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function permission(name: 'microphone' | 'camera'): Promise<Permission> {
  try {
    const status = await navigator.permissions.query({ name: name as PermissionName });
    return status.state;
  } catch {
    return 'unknown'; // Firefox has no 'camera' permission name; Safari none at all.
  }
}

/** Devices and permission states, without prompting; `ask` adds what getUserMedia says. */
export async function inspectDevices(ask: boolean): Promise<DeviceFindings> {
  const media = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
  if (!media?.enumerateDevices) {
    return { available: false, microphones: 0, cameras: 0, mic: 'unknown', camera: 'unknown' };
  }
  let tried: DeviceFindings['tried'];
  if (ask) {
    const one = async (constraints: MediaStreamConstraints): Promise<'ok' | DeviceProblem> => {
      try {
        const stream = await media.getUserMedia(constraints);
        stream.getTracks().forEach((t) => t.stop());
        return 'ok';
      } catch (err) {
        return classifyMediaError(err);
      }
    };
    tried = { audio: await one({ audio: true }), video: await one({ video: true }) };
  }
  const devices = await media.enumerateDevices().catch(() => [] as MediaDeviceInfo[]);
  return {
    available: true,
    microphones: devices.filter((d) => d.kind === 'audioinput').length,
    cameras: devices.filter((d) => d.kind === 'videoinput').length,
    mic: await permission('microphone'),
    camera: await permission('camera'),
    tried,
  };
}

/** The socket's transport once it had its chance to upgrade (null: not connected). */
export async function settledTransport(): Promise<string | null> {
  const deadline = Date.now() + UPGRADE_WAIT_MS;
  while (realtimeTransport.value !== 'websocket' && Date.now() < deadline) await sleep(100);
  return realtimeTransport.value;
}

function waitFor(target: EventTarget, event: string, done: () => boolean, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (done()) return resolve(true);
    const timer = setTimeout(() => finish(false), ms);
    const check = () => done() && finish(true);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      target.removeEventListener(event, check);
      resolve(ok);
    };
    target.addEventListener(event, check);
  });
}

const gathered = (pc: RTCPeerConnection) =>
  waitFor(pc, 'icegatheringstatechange', () => pc.iceGatheringState === 'complete', GATHER_TIMEOUT_MS);

/** Round trips over an open channel whose other end echoes. */
async function ping(channel: RTCDataChannel): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const text = `ping:${i}:${Math.random().toString(36).slice(2)}`;
    const started = performance.now();
    const back = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), PING_TIMEOUT_MS);
      const onMessage = (e: MessageEvent) => e.data === text && done(true);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        channel.removeEventListener('message', onMessage);
        resolve(ok);
      };
      channel.addEventListener('message', onMessage);
      channel.send(text);
    });
    if (back) samples.push(performance.now() - started);
  }
  return samples;
}

const hasTurn = (servers: IceServerConfig[]) =>
  servers.some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^turns?:/i.test(u)));

/** One path to the server's SFU probe (`POST /api/doctor/probe`). */
export async function probeServer(path: MediaPath, iceServers: IceServerConfig[]): Promise<ProbeOutcome> {
  if (path === 'relay' && !hasTurn(iceServers)) return { kind: 'noTurn' };
  const pc = new RTCPeerConnection(
    path === 'relay' ? { iceServers, iceTransportPolicy: 'relay' } : { iceServers: [] },
  );
  try {
    const channel = pc.createDataChannel('doctor');
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await api.probe(path, pc.localDescription?.sdp ?? '');
    if (!answer.available) return { kind: answer.reason };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const open = await waitFor(channel, 'open', () => channel.readyState === 'open', OPEN_TIMEOUT_MS);
    if (!open) return { kind: 'noConnection' };
    const samples = await ping(channel);
    channel.send(BYE);
    return samples.length ? { kind: 'rtt', samples } : { kind: 'noConnection' };
  } catch (err) {
    return { kind: 'error', code: err instanceof ApiError ? err.code : String((err as Error)?.name ?? err) };
  } finally {
    // Let the bye leave before the connection goes.
    setTimeout(() => pc.close(), 200);
  }
}

/** Mesh mode has no server peer: two connections of this page, both forced through TURN. */
export async function probeLocalRelay(iceServers: IceServerConfig[]): Promise<ProbeOutcome> {
  if (!hasTurn(iceServers)) return { kind: 'noTurn' };
  const config: RTCConfiguration = { iceServers, iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  try {
    a.onicecandidate = (e) => e.candidate && void b.addIceCandidate(e.candidate).catch(() => {});
    b.onicecandidate = (e) => e.candidate && void a.addIceCandidate(e.candidate).catch(() => {});
    b.ondatachannel = (e) => {
      const echo = e.channel;
      echo.onmessage = (m) => echo.send(m.data);
    };
    const channel = a.createDataChannel('doctor');
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    const open = await waitFor(channel, 'open', () => channel.readyState === 'open', OPEN_TIMEOUT_MS);
    if (!open) return { kind: 'noConnection' };
    const samples = await ping(channel);
    return samples.length ? { kind: 'rtt', samples } : { kind: 'noConnection' };
  } catch (err) {
    return { kind: 'error', code: String((err as Error)?.name ?? err) };
  } finally {
    a.close();
    b.close();
  }
}
