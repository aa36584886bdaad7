import { describe, expect, it } from 'vitest';

import { detectLang, format, lang, setLang, t, tables } from '../src/i18n';
import { en, vi } from '../src/i18n/strings';

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('i18n', () => {
  it('has every key in both languages, none empty', () => {
    expect(Object.keys(vi).sort()).toEqual(Object.keys(en).sort());
    for (const table of Object.values(tables)) {
      for (const [key, value] of Object.entries(table)) {
        expect(value.trim(), key).not.toBe('');
      }
    }
  });

  it('uses the same placeholders in both languages', () => {
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      expect(placeholders(vi[key]), key).toEqual(placeholders(en[key]));
    }
  });

  it('is really translated', () => {
    const same = (Object.keys(en) as (keyof typeof en)[]).filter((k) => en[k] === vi[k]);
    // Only words that are the same in both (e.g. "Email") may repeat.
    expect(same).toEqual(['signIn.email']);
  });

  it('picks the stored choice, else the browser language, else English', () => {
    expect(detectLang('vi', ['en-US'])).toBe('vi');
    expect(detectLang(null, ['vi-VN', 'en'])).toBe('vi');
    expect(detectLang(null, ['fr-FR', 'en-GB'])).toBe('en');
    expect(detectLang('xx', ['de'])).toBe('en');
  });

  it('switches, remembers and fills placeholders', () => {
    setLang('vi');
    expect(lang.value).toBe('vi');
    expect(localStorage.getItem('talkconnect.lang')).toBe('vi');
    expect(t('room.hostedBy', { name: 'An' })).toBe('Chủ phòng: An');
    setLang('en');
    expect(t('room.seats', { taken: 2, limit: 6 })).toBe('2/6 seats');
    expect(format('{a} and {b}', { a: 1 })).toBe('1 and {b}');
  });
});
