import { initials } from '../state/room';

/** Initials on a colour picked from the name, the same on every screen. */
export function Avatar({ name, small }: { name: string; small?: boolean }) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return (
    <span class={`avatar ${small ? 'small' : ''}`} style={{ '--hue': String(hash % 360) }} aria-hidden="true">
      {initials(name)}
    </span>
  );
}
