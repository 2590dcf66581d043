/**
 * Fleet mode: several sidecars watch one Redis, and each BullMQ queue is collected by one of them at a
 * time, under a lease kept in Redis beside the queue's own keys:
 *
 *   <prefix>:<queue>:warden:lease     hash { holder, token }, expires after leaseMs unless renewed
 *   <prefix>:<queue>:warden:position  hash { id, token, fence, holder, leased }: the stream position the
 *                                      fleet recorded for the queue, who wrote it, the last token issued,
 *                                      and the last acquirer ('' after a release: the next is no takeover)
 *   <prefix>:warden:fleet:members     sorted set of live sidecars, scored by heartbeat expiry (ms)
 *
 * Fencing: every acquisition increments `fence` and the holder gets it as its token. Renewing, the
 * check before each append batch and advancing the shared position are Lua scripts that succeed only
 * while the lease key still names this holder with this token, so a paused ex-holder (its lease expired
 * and perhaps taken over) learns it lost the queue before its next append, and can never move the
 * fleet's position. All times are Redis's own clock (TIME), so sidecars' clocks need not agree.
 *
 * Spreading: each sidecar takes at most ceil(queues / live members) leases and gives back what is
 * above that share (after its batch in flight is durable), so a sidecar that joins gets work.
 */
import type { Redis } from 'ioredis';
import { compareStreamIds, queueKey } from './keys.js';

export const leaseKey = (prefix: string, queue: string) => queueKey(prefix, queue, 'warden:lease');
export const leasePositionKey = (prefix: string, queue: string) => queueKey(prefix, queue, 'warden:position');
export const membersKey = (prefix: string) => `${prefix}:warden:fleet:members`;

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: lease, position. ARGV: member, leaseMs. Returns {status, token, position, previousHolder}:
// status 0 held by another, 1 renewed (already ours), 2 acquired (new token).
const ACQUIRE = `
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then return {0, '', '', holder} end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('HGET', KEYS[1], 'token'), redis.call('HGET', KEYS[2], 'id') or '', ARGV[1]}
end
local token = redis.call('HINCRBY', KEYS[2], 'fence', 1)
-- The last acquirer ('' once it gave the lease back); positions written before that field: who advanced last.
local previous = redis.call('HGET', KEYS[2], 'leased')
if not previous then previous = redis.call('HGET', KEYS[2], 'holder') or '' end
redis.call('HSET', KEYS[2], 'leased', ARGV[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {2, tostring(token), redis.call('HGET', KEYS[2], 'id') or '', previous}
`;

// KEYS: lease. ARGV: member, token, leaseMs. 1: still ours (extended); 0: expired or taken over.
const CONFIRM = `
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// KEYS: lease, position. ARGV: member, token, stream id. 1: recorded (or already past it); 0: fenced off.
const ADVANCE = `
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
local cur = redis.call('HGET', KEYS[2], 'id')
local function parse(id) local ms, seq = string.match(id, '^(%d+)-(%d+)$'); return tonumber(ms), tonumber(seq) end
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[3])
  if cm and nm and (nm < cm or (nm == cm and ns <= cs)) then return 1 end
end
redis.call('HSET', KEYS[2], 'id', ARGV[3], 'token', ARGV[2], 'holder', ARGV[1])
return 1
`;

// KEYS: lease, position. ARGV: member, token. Gives the lease back at once (a graceful stop or a rebalance):
// the next acquirer is not taking over from anyone.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  if redis.call('HGET', KEYS[2], 'leased') == ARGV[1] then redis.call('HSET', KEYS[2], 'leased', '') end
  return redis.call('DEL', KEYS[1])
end
return 0
`;

// KEYS: members. ARGV: member, ttlMs, leaving (1/0). Returns the live member count.
const HEARTBEAT = `
${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return redis.call('ZCARD', KEYS[1])
`;

export interface LeaseOptions {
  prefix: string;
  /** This sidecar's name in the fleet (unique per process). */
  memberId: string;
  /** A lease not renewed for this long is free for another sidecar to take. */
  leaseMs: number;
}

export interface Acquired { queue: string; token: string; /** The fleet's recorded position ('' if none). */ position: string; /** Another member held it before and did not give it back: a takeover. */ takeover: boolean; previousHolder: string }

export interface LeaseRound {
  acquired: Acquired[];
  /** Held queues whose lease was found expired or taken over: stop collecting them now. */
  lost: string[];
  /** Held queues above this sidecar's share: hand back (after the batch in flight is durable). */
  surplus: string[];
  members: number;
}

interface Held { token: string; /** performance.now() before which the lease is certainly still ours. */ validUntil: number }

type Scripted = Record<string, (...a: unknown[]) => Promise<unknown>>;

export class QueueLeases {
  private readonly held = new Map<string, Held>();

  constructor(private readonly redis: Redis, private readonly o: LeaseOptions) {
    const r = redis as unknown as Record<string, unknown>;
    if (!r.wardenLeaseAcquire) {
      redis.defineCommand('wardenLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
      redis.defineCommand('wardenLeaseConfirm', { numberOfKeys: 1, lua: CONFIRM });
      redis.defineCommand('wardenLeaseAdvance', { numberOfKeys: 2, lua: ADVANCE });
      redis.defineCommand('wardenLeaseRelease', { numberOfKeys: 2, lua: RELEASE });
      redis.defineCommand('wardenFleetHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT });
    }
  }

  get memberId(): string { return this.o.memberId; }
  get heldQueues(): string[] { return [...this.held.keys()]; }
  token(queue: string): string | undefined { return this.held.get(queue)?.token; }

  /**
   * One lease round: heartbeat, renew what is held, take free queues up to the share, name the surplus.
   * `candidates` are the queues this sidecar would collect (configured or discovered).
   */
  async round(candidates: readonly string[]): Promise<LeaseRound> {
    const started = performance.now();
    const s = this.redis as unknown as Scripted;
    const members = Math.max(1, Number(await s.wardenFleetHeartbeat(membersKey(this.o.prefix), this.o.memberId, this.o.leaseMs, '0')));
    const share = Math.ceil(candidates.length / members);
    const lost: string[] = [];
    const acquired: Acquired[] = [];
    // Renew first, so a held queue never counts against the share twice.
    const heldNow = [...this.held.keys()];
    if (heldNow.length > 0) {
      const ok = await this.confirmAt(heldNow, started);
      for (const q of heldNow) if (!ok.has(q)) lost.push(q);
    }
    // Then take free ones, in a per-member order, so sidecars starting together try different queues first.
    const order = rotate([...candidates].filter((q) => !this.held.has(q)).sort(), hash(this.o.memberId));
    for (const queue of order) {
      if (this.held.size >= share) break;
      const [status, token, position, previous] = (await s.wardenLeaseAcquire(leaseKey(this.o.prefix, queue), leasePositionKey(this.o.prefix, queue), this.o.memberId, this.o.leaseMs)) as [number, string, string, string];
      if (status === 0) continue;
      this.held.set(queue, { token, validUntil: started + this.safeMs() });
      acquired.push({ queue, token, position, previousHolder: previous, takeover: status === 2 && previous !== '' && previous !== this.o.memberId });
    }
    const surplus = [...this.held.keys()].sort().slice(share);
    return { acquired, lost, surplus, members };
  }

  /**
   * The fence before an append: which of these queues are still ours, checked atomically in Redis
   * (and extended). A queue not confirmed is dropped from what is held.
   */
  async confirm(queues: readonly string[]): Promise<Set<string>> {
    return this.confirmAt(queues, performance.now());
  }

  private async confirmAt(queues: readonly string[], started: number): Promise<Set<string>> {
    const mine = queues.filter((q) => this.held.has(q));
    const ok = new Set<string>();
    if (mine.length === 0) return ok;
    const pipe = this.redis.pipeline() as unknown as Record<string, (...a: unknown[]) => void> & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const q of mine) pipe.wardenLeaseConfirm(leaseKey(this.o.prefix, q), this.o.memberId, this.held.get(q)!.token, this.o.leaseMs);
    const res = (await pipe.exec()) ?? [];
    mine.forEach((q, i) => {
      const [err, v] = res[i] ?? [new Error('no reply'), 0];
      if (err) return; // unknown: keep it, but the local deadline still applies
      if (Number(v) === 1) { this.held.get(q)!.validUntil = started + this.safeMs(); ok.add(q); } else this.held.delete(q);
    });
    return ok;
  }

  /** True while the last confirmation is recent enough that the lease cannot have expired (local monotonic clock). */
  valid(queue: string): boolean {
    const h = this.held.get(queue);
    return h !== undefined && performance.now() < h.validUntil;
  }

  /** Records durable positions for the fleet; returns the queues whose advance was fenced off (lost). */
  async advance(positions: readonly { queue: string; position: string }[]): Promise<string[]> {
    const mine = positions.filter((p) => this.held.has(p.queue) && p.position.includes('-') && p.position !== '0-0');
    if (mine.length === 0) return [];
    const pipe = this.redis.pipeline() as unknown as Record<string, (...a: unknown[]) => void> & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const p of mine) pipe.wardenLeaseAdvance(leaseKey(this.o.prefix, p.queue), leasePositionKey(this.o.prefix, p.queue), this.o.memberId, this.held.get(p.queue)!.token, p.position);
    const res = (await pipe.exec()) ?? [];
    const lost: string[] = [];
    mine.forEach((p, i) => {
      const [err, v] = res[i] ?? [null, 1];
      if (!err && Number(v) === 0) { this.held.delete(p.queue); lost.push(p.queue); }
    });
    return lost;
  }

  /** Gives a lease back (the holder's batches are durable and its position advanced). */
  async release(queue: string): Promise<void> {
    const h = this.held.get(queue);
    this.held.delete(queue);
    if (h) await (this.redis as unknown as Scripted).wardenLeaseRelease(leaseKey(this.o.prefix, queue), leasePositionKey(this.o.prefix, queue), this.o.memberId, h.token);
  }

  /** Leaves the fleet: every lease given back and the membership removed (a graceful stop). */
  async leave(): Promise<void> {
    for (const q of [...this.held.keys()]) await this.release(q).catch(() => undefined);
    await (this.redis as unknown as Scripted).wardenFleetHeartbeat(membersKey(this.o.prefix), this.o.memberId, this.o.leaseMs, '1').catch(() => undefined);
  }

  /** Forgets a lease locally (it was lost). */
  drop(queue: string): void { this.held.delete(queue); }

  /** The lease is trusted locally for this long after a confirmation started: a margin below leaseMs for clock rate and latency. */
  private safeMs(): number { return Math.max(1, this.o.leaseMs - Math.min(2000, this.o.leaseMs / 5)); }
}

/** Newer of two stream positions ('' or undefined: none). */
export function laterPosition(a: string | undefined, b: string | undefined): string | undefined {
  if (!a) return b || undefined;
  if (!b) return a;
  return compareStreamIds(a, b) >= 0 ? a : b;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function rotate<T>(xs: T[], by: number): T[] {
  if (xs.length === 0) return xs;
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}
