/** Time arguments of ledger queries (`--since 2h`, `--until 2024-05-01`), as epoch milliseconds. */
import { TimeArgError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^(\d+)(ms|s|m|h|d|w)$/;
const DIGITS = /^\d+$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;
// Epoch milliseconds below this are before 1973: almost surely epoch seconds typed by mistake.
const MIN_EPOCH_MS = 100_000_000_000;

/**
 * ISO-8601 (an ISO time without an offset is UTC, so results do not depend on the machine's zone),
 * epoch milliseconds, `now`, or a duration ago: `15m` is now minus 15 minutes.
 */
export function parseTimeArg(arg: string, now: number = Date.now()): number {
  const s = String(arg).trim();
  if (s === 'now') return now;
  const rel = RELATIVE.exec(s);
  if (rel) {
    const ms = Number(rel[1]) * UNIT_MS[rel[2]];
    if (!Number.isSafeInteger(ms)) throw new TimeArgError(arg, 'duration too large');
    return now - ms;
  }
  if (DIGITS.test(s)) {
    const ms = Number(s);
    if (!Number.isSafeInteger(ms)) throw new TimeArgError(arg, 'number too large');
    if (ms < MIN_EPOCH_MS) throw new TimeArgError(arg, `as epoch milliseconds this is before 1973; for epoch seconds write ${s}000`);
    return ms;
  }
  const iso = ISO.exec(s);
  if (iso) return fromIso(arg, iso);
  throw new TimeArgError(arg);
}

function fromIso(arg: string, m: RegExpExecArray): number {
  const num = (x: string | undefined) => (x === undefined ? 0 : Number(x));
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [num(m[4]), num(m[5]), num(m[6])];
  const millis = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  if (year < 1970) throw new TimeArgError(arg, 'the ledger has nothing before 1970');
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    throw new TimeArgError(arg, 'a field is out of range');
  }
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  if (new Date(utc).getUTCDate() !== day) throw new TimeArgError(arg, `${m[1]}-${m[2]} has no day ${day}`);
  return utc - offsetMs(arg, m[8]);
}

function offsetMs(arg: string, zone: string | undefined): number {
  if (!zone || zone.toUpperCase() === 'Z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2));
  if (hours > 23 || minutes > 59) throw new TimeArgError(arg, 'the UTC offset is out of range');
  return (zone[0] === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}
