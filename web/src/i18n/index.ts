// Every UI string goes through t(): English and Vietnamese tables, the language picked from
// the stored choice, else navigator.language, and remembered when switched.
import { signal } from '@preact/signals';

import { en, vi, type MessageKey } from './strings';

export type Lang = 'en' | 'vi';
export const LANGS: Lang[] = ['en', 'vi'];
export const tables: Record<Lang, Record<MessageKey, string>> = { en, vi };
export type { MessageKey };

const STORAGE_KEY = 'talkconnect.lang';

export function detectLang(stored: string | null, navigatorLanguages: readonly string[]): Lang {
  if (stored === 'en' || stored === 'vi') return stored;
  for (const tag of navigatorLanguages) {
    const base = tag.toLowerCase().split('-')[0];
    if (base === 'vi' || base === 'en') return base;
  }
  return 'en';
}

function readStored(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

const browserLangs = (): readonly string[] =>
  typeof navigator === 'undefined' ? [] : navigator.languages?.length ? navigator.languages : [navigator.language];

export const lang = signal<Lang>(detectLang(readStored(), browserLangs()));

export function setLang(next: Lang): void {
  lang.value = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Private mode: the choice lasts for this page only.
  }
}

/** The string for `key` in the current language, `{name}` placeholders filled in. */
export function t(key: MessageKey, params?: Record<string, string | number>): string {
  return format(tables[lang.value][key] ?? en[key], params);
}

export function format(template: string, params?: Record<string, string | number>): string {
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

/** "vi" → "Tiếng Việt" / "Vietnamese", in the UI language. */
export function languageName(code: string): string {
  try {
    const names = new Intl.DisplayNames([lang.value], { type: 'language' });
    const name = names.of(code);
    if (name && name !== code) return name.charAt(0).toLocaleUpperCase(lang.value) + name.slice(1);
  } catch {
    // Old browsers: fall back to the code.
  }
  return code.toUpperCase();
}

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleTimeString(lang.value === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
}

export function formatDateTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleString(lang.value === 'vi' ? 'vi-VN' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}
