/**
 * Epoch milliseconds as ISO 8601 text for people, for any number a record may hold: a value no Date
 * can represent (beyond ±8.64e15, not finite, not a number) is shown as it is, never thrown
 * (`RangeError: Invalid time value`). Readers of stored records use this, so nothing stored can crash them.
 */
export function isoTime(ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return `(invalid time ${String(ms)})`;
  return new Date(ms).toISOString();
}
