import { describe, expect, it } from 'vitest';

import {
  CHECK_IDS,
  devicesResult,
  pathResult,
  pending,
  realtimeResult,
  reportText,
  rttStats,
  secureResult,
  type DeviceFindings,
} from '../src/doctor/report';
import { setLang, t } from '../src/i18n';
import { parseRoute } from '../src/router';

const found = (over: Partial<DeviceFindings> = {}): DeviceFindings => ({
  available: true,
  microphones: 1,
  cameras: 1,
  mic: 'prompt',
  camera: 'prompt',
  ...over,
});

describe('doctor verdicts', () => {
  it('has a route', () => {
    expect(parseRoute('/doctor')).toEqual({ name: 'doctor' });
    expect(parseRoute('/doctor/')).toEqual({ name: 'doctor' });
  });

  it('needs a secure page', () => {
    expect(secureResult(true).status).toBe('ok');
    expect(secureResult(false)).toMatchObject({ status: 'fail', fix: 'doctor.secure.fix' });
  });

  it('judges devices from permissions, counts and what getUserMedia said', () => {
    expect(devicesResult(found()).status).toBe('warn'); // not asked yet
    expect(devicesResult(found({ mic: 'granted', camera: 'granted' })).status).toBe('ok');
    expect(devicesResult(found({ tried: { audio: 'ok', video: 'ok' } })).status).toBe('ok');
    expect(devicesResult(found({ tried: { audio: 'denied', video: 'denied' } }))).toMatchObject({
      status: 'fail',
      fix: 'doctor.devices.deniedFix',
      params: { mic: 'doctor.perm.denied', cam: 'doctor.perm.denied' },
    });
    expect(devicesResult(found({ tried: { audio: 'ok', video: 'denied' } })).status).toBe('warn');
    expect(devicesResult(found({ microphones: 0 }))).toMatchObject({ status: 'fail', message: 'doctor.devices.noMic' });
    expect(devicesResult(found({ cameras: 0, mic: 'granted' }))).toMatchObject({
      status: 'warn',
      message: 'doctor.devices.noCamera',
    });
    expect(devicesResult(found({ tried: { audio: 'busy', video: 'ok' } })).fix).toBe('doctor.devices.busyFix');
    expect(devicesResult(found({ available: false }))).toMatchObject({ status: 'fail', fix: 'doctor.secure.fix' });
  });

  it('wants the socket on websocket', () => {
    expect(realtimeResult('websocket').status).toBe('ok');
    expect(realtimeResult('polling')).toMatchObject({ status: 'warn', fix: 'doctor.realtime.pollingFix' });
    expect(realtimeResult(null).status).toBe('fail');
  });

  it('summarises round trips', () => {
    expect(rttStats([])).toBeNull();
    expect(rttStats([30.4, 10.2, 20.6])).toEqual({ median: 21, min: 10, max: 30 });
    expect(rttStats([10, 20, 30, 40])).toEqual({ median: 25, min: 10, max: 40 });
  });

  it('turns probe outcomes into verdicts with fixes', () => {
    expect(pathResult('udp', { kind: 'rtt', samples: [5, 7, 6] })).toMatchObject({
      status: 'ok',
      rttMs: 6,
      params: { rtt: 6, min: 5, max: 7 },
    });
    expect(pathResult('udp', { kind: 'rtt', samples: [900, 800, 700] }).status).toBe('warn');
    expect(pathResult('udp', { kind: 'rtt', samples: [] }).status).toBe('fail');
    expect(pathResult('udp', { kind: 'noConnection' }).fix).toBe('doctor.udp.failFix');
    expect(pathResult('tcp', { kind: 'iceTcpOff' })).toMatchObject({ status: 'warn', message: 'doctor.tcp.off' });
    expect(pathResult('relay', { kind: 'noTurn' })).toMatchObject({ status: 'warn', fix: 'doctor.relay.noneFix' });
    expect(pathResult('tcp', { kind: 'meshMode' }).status).toBe('skip');
    expect(pathResult('relay', { kind: 'error', code: 'RATE_LIMITED' }).params).toEqual({ code: 'RATE_LIMITED' });
  });

  it('writes a plain-text report in the page language', () => {
    const results = [
      secureResult(true),
      devicesResult(found({ tried: { audio: 'denied', video: 'ok' } })),
      realtimeResult('polling'),
      pathResult('udp', { kind: 'rtt', samples: [12] }),
      pathResult('tcp', { kind: 'iceTcpOff' }),
      pending('relay'),
    ];
    expect(results.map((r) => r.id)).toEqual(CHECK_IDS);
    const context = { url: 'https://talk.example', userAgent: 'UA', time: '2026-01-01T00:00:00Z' };
    setLang('en');
    const en = reportText(results, t, context);
    expect(en).toContain('TalkConnect connection report');
    expect(en).toContain('[OK] Audio and video over UDP (direct)');
    expect(en).toContain('Round trip 12 ms');
    expect(en).toContain('Microphone blocked, camera allowed');
    expect(en).toContain('How to fix: A proxy, firewall');
    expect(en).toContain('[Waiting] Audio and video through a TURN relay');
    setLang('vi');
    const vi = reportText(results, t, context);
    expect(vi).toContain('Báo cáo kết nối TalkConnect');
    expect(vi).toContain('Micro đang bị chặn, camera đã cho phép');
    expect(vi).toContain('[Lưu ý] Âm thanh và hình ảnh qua TCP (dự phòng)');
    setLang('en');
  });
});
