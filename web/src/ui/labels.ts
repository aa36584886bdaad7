import type { Level } from '../api/types';
import { t, type MessageKey } from '../i18n';

const LEVEL_KEYS: Record<Level, MessageKey> = {
  any: 'level.any',
  beginner: 'level.beginner',
  upper_beginner: 'level.upper_beginner',
  intermediate: 'level.intermediate',
  upper_intermediate: 'level.upper_intermediate',
  advanced: 'level.advanced',
  upper_advanced: 'level.upper_advanced',
};

export const LEVELS = Object.keys(LEVEL_KEYS) as Level[];

export function levelLabel(level: Level): string {
  return t(LEVEL_KEYS[level] ?? 'level.any');
}
