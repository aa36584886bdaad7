import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';

import type { ChatMessage } from '../src/api/types';
import { mergeMessages } from '../src/state/chat';
import { ChatMessageItem } from '../src/ui/Chat';
import { at, user } from './fixtures';

const msg = (id: string, text: string, minute = 0): ChatMessage => ({
  id,
  roomId: 'r1',
  message: text,
  createdAt: at(minute),
  sender: user('u1', 'Mai'),
});

let host: HTMLElement;
afterEach(() => host?.remove());

function mount(message: ChatMessage, own = false, fromHost = false): HTMLElement {
  host = document.createElement('div');
  document.body.appendChild(host);
  render(<ChatMessageItem message={message} own={own} host={fromHost} />, host);
  return host;
}

describe('chat rendering is text only', () => {
  it('renders markup as text, never as elements', () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>';
    const el = mount(msg('m1', evil));
    const text = el.querySelector('.chat-text');
    expect(text?.textContent).toBe(evil);
    expect(el.querySelector('img, script, b')).toBeNull();
    expect(text?.childNodes).toHaveLength(1);
    expect(text?.firstChild?.nodeType).toBe(Node.TEXT_NODE);
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it('keeps links as plain text', () => {
    const el = mount(msg('m2', 'see https://example.com/?a=<b> and javascript:alert(1)'));
    expect(el.querySelector('a')).toBeNull();
    expect(el.querySelector('.chat-text')?.textContent).toContain('javascript:alert(1)');
  });

  it("badges the host's messages, so a copied name does not pass for the host", () => {
    expect(mount(msg('m4', 'hi'), false, true).querySelector('.chat-meta .badge')).not.toBeNull();
    host.remove();
    expect(mount(msg('m5', 'hi'), false, false).querySelector('.chat-meta .badge')).toBeNull();
  });

  it('marks own messages', () => {
    const el = mount(msg('m3', 'hi'), true);
    expect(el.querySelector('.chat-message')?.getAttribute('data-own')).toBe('true');
  });
});

describe('chat message list', () => {
  it('merges history pages and live messages oldest first without duplicates', () => {
    const live = [msg('c', 'third', 3)];
    const page = [msg('b', 'second', 2), msg('a', 'first', 1)];
    const merged = mergeMessages(mergeMessages(live, page), [msg('c', 'third', 3)]);
    expect(merged.map((m) => m.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('chat delete button', () => {
  it('shows only with a handler, says whose message, and calls it', () => {
    let deleted = 0;
    host = document.createElement('div');
    document.body.appendChild(host);
    render(<ChatMessageItem message={msg('m9', 'hi')} own={false} cohost onDelete={() => deleted++} />, host);
    const button = host.querySelector<HTMLButtonElement>('[data-testid="chat-delete"]')!;
    expect(button.getAttribute('aria-label')).toContain('Mai');
    button.click();
    expect(deleted).toBe(1);
    expect(host.textContent).toContain('co-host');
    host.remove();
    expect(mount(msg('m9', 'hi')).querySelector('[data-testid="chat-delete"]')).toBeNull();
  });
});
