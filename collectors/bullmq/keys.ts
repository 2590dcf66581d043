/** BullMQ's Redis key layout: `<prefix>:<queue>:<suffix>`. */
export const queueKey = (prefix: string, queue: string, suffix: string) => `${prefix}:${queue}:${suffix}`;
export const eventsKey = (prefix: string, queue: string) => queueKey(prefix, queue, 'events');
export const jobKey = (prefix: string, queue: string, jobId: string) => queueKey(prefix, queue, jobId);

/** `bull:emails:meta` -> `emails`; null when the key is not a queue's meta key under this prefix. */
export function queueFromMetaKey(prefix: string, key: string): string | null {
  if (!key.startsWith(`${prefix}:`) || !key.endsWith(':meta')) return null;
  const name = key.slice(prefix.length + 1, -':meta'.length);
  return name.length > 0 && !name.includes(':') ? name : null;
}

/** Stream IDs are `<ms>-<seq>`; compared numerically, never as strings. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am !== bm ? am - bm : (as ?? 0) - (bs ?? 0);
}

export const streamIdMs = (id: string) => Number(id.slice(0, id.indexOf('-') >>> 0));
