import { pino, type Logger } from 'pino';
import type { WardenConfig } from './config.js';

/** JSON logs on stderr, so commands that print data keep stdout clean. */
export function createLogger(level: WardenConfig['log']['level']): Logger {
  return pino({ level, base: { service: 'warden' } }, pino.destination(2));
}
