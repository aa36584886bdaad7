import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';

import type { Participant } from '../src/api/types';
import { PersonMenu } from '../src/ui/Moderation';
import { participant } from './fixtures';

let host: HTMLElement;
afterEach(() => host?.remove());

function mount(p: Participant, myRole: Participant['role'], isMe = false): HTMLElement {
  host = document.createElement('div');
  document.body.appendChild(host);
  render(<PersonMenu p={p} myRole={myRole} isMe={isMe} live act={() => {}} onReport={() => {}} />, host);
  return host;
}

async function open(el: HTMLElement): Promise<string[]> {
  el.querySelector<HTMLButtonElement>('[data-testid="person-menu"]')!.click();
  await new Promise((r) => setTimeout(r, 0));
  return [...el.querySelectorAll('[role="menuitem"]')].map((b) => b.getAttribute('data-testid')!);
}

describe('person menu', () => {
  it('offers the host every action, with stable test ids', async () => {
    const items = await open(mount(participant('a', { displayName: 'An' }), 'HOST'));
    expect(items).toEqual([
      'menu-make-cohost',
      'menu-transfer-host',
      'menu-mute-mic',
      'menu-stop-camera',
      'menu-kick',
      'menu-report',
      'menu-block',
    ]);
    expect(host.querySelector('[data-testid="person-menu"]')!.getAttribute('aria-label')).toContain('An');
  });

  it('shows "lift" for a locked mic and camera, "remove co-host" for a co-host', async () => {
    const items = await open(mount(participant('a', { role: 'COHOST', micLocked: true, cameraLocked: true }), 'HOST'));
    expect(items).toContain('menu-unmake-cohost');
    expect(items).toContain('menu-unlock-mic');
    expect(items).toContain('menu-unlock-camera');
  });

  it('a participant sees report and block only; nobody gets a menu for themself', async () => {
    expect(await open(mount(participant('h', { role: 'HOST' }), 'PARTICIPANT'))).toEqual(['menu-report', 'menu-block']);
    host.remove();
    expect(mount(participant('me'), 'HOST', true).querySelector('[data-testid="person-menu"]')).toBeNull();
  });
});
