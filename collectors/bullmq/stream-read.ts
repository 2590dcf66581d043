/**
 * Reads a queue's event stream after a checkpoint and, in the same atomic step, learns whether
 * anything after that checkpoint was trimmed away. BullMQ trims its stream (`MAXLEN ~ 10000`), and a
 * reader that lags or was down loses events; doing both in one Lua call makes the gap check exact
 * (no trim can land between "what was deleted" and "what is there").
 */
import type { Redis } from 'ioredis';

// Returns { maxDeletedId, firstId, entries, checkpointExists, instrumented }. Redis 7 reports
// max-deleted-entry-id for XDEL only; MAXLEN trimming removes a prefix, which shows as the checkpoint
// entry being gone while the first retained entry is newer than it. KEYS[2] is the queue's
// "instrumented" marker (convention.ts), read with the entries so the flag is current for them.
const SCRIPT = `
local marker = redis.call('EXISTS', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', '', {}, 0, marker} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local maxDeleted, firstId = '', ''
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then maxDeleted = info[i + 1] end
  if info[i] == 'first-entry' and info[i + 1] then firstId = info[i + 1][1] end
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local present = 0
if ARGV[1] ~= '0-0' and #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) > 0 then present = 1 end
return {maxDeleted, firstId, entries, present, marker}
`;

export interface StreamEntry {
  id: string;
  /** The stream entry's fields, e.g. { event: 'completed', jobId: '12', returnvalue: '...' }. */
  fields: Record<string, string>;
}

export interface StreamRead {
  maxDeletedId: string | null;
  firstId: string | null;
  entries: StreamEntry[];
  /** The entry the read started after is still in the stream (so nothing after it was trimmed). */
  checkpointExists: boolean;
  /**
   * A wrapped worker (`wardenProcessor`) traces this queue's attempts: its marker key existed at the
   * time of the read. The marker is set before an attempt runs, so it is there when its end is read.
   */
  instrumented: boolean;
}

type RawEntry = [string, string[]];

export function defineStreamRead(redis: Redis): void {
  if (!(redis as unknown as Record<string, unknown>).wardenStreamRead) {
    redis.defineCommand('wardenStreamRead', { numberOfKeys: 2, lua: SCRIPT });
  }
}

export function parseStreamRead(raw: unknown): StreamRead {
  const [maxDeleted, firstId, entries, present, marker] = raw as [string, string, RawEntry[], number, number];
  return {
    checkpointExists: present === 1,
    instrumented: marker === 1,
    maxDeletedId: maxDeleted && maxDeleted !== '0-0' ? maxDeleted : null,
    firstId: firstId || null,
    entries: entries.map(([id, kv]) => ({ id, fields: pairs(kv) })),
  };
}

function pairs(kv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < kv.length; i += 2) out[kv[i]] = kv[i + 1];
  return out;
}

/**
 * Queues a read of each stream after its checkpoint in one pipeline; results in the same order.
 * `marker`: the queue's instrumented-marker key (`instrumentedKey`).
 */
export async function readStreams(
  redis: Redis,
  reads: { key: string; marker: string; after: string }[],
  count: number,
): Promise<(StreamRead | Error)[]> {
  defineStreamRead(redis);
  const pipe = redis.pipeline();
  for (const r of reads) (pipe as unknown as Record<string, (...a: unknown[]) => void>).wardenStreamRead(r.key, r.marker, r.after, count);
  const results = (await pipe.exec()) ?? [];
  return results.map(([err, value]) => (err ? err : parseStreamRead(value)));
}
