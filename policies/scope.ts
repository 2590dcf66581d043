/** Which events a policy covers, and which breaker scope an event falls in. */
import type { BreakerScope } from '../core/breakers.js';
import { breakerKey } from '../core/breakers.js';
import type { WardenEvent } from '../core/event.js';
import type { Policy, Scope } from './schema.js';

export function matchesScope(s: Scope, ev: WardenEvent): boolean {
  if (ev.source === 'warden') return false;
  if (s.system !== 'any' && s.system !== ev.source) return false;
  if (s.queue !== undefined && s.queue !== ev.queue) return false;
  if (s.jobName !== undefined && ((ev.source !== 'bullmq' && ev.source !== 'celery') || s.jobName !== ev.job_name)) return false;
  if (s.activityType !== undefined && (ev.source !== 'temporal' || s.activityType !== ev.activity_type)) return false;
  if (s.model !== undefined && s.model !== ev.model) return false;
  return true;
}

/** The breaker an event's attempts count towards: its queue (BullMQ), activity type or task queue (Temporal). */
export function breakerScopeOf(p: Policy, ev: WardenEvent): BreakerScope | null {
  if (ev.source === 'bullmq' && ev.queue) return { system: 'bullmq', kind: 'queue', name: ev.queue };
  if (ev.source === 'celery' && ev.queue) return { system: 'celery', kind: 'queue', name: ev.queue };
  if (ev.source === 'temporal') {
    if (p.scope.activityType && ev.activity_type) return { system: 'temporal', kind: 'activity', name: ev.activity_type };
    if (ev.queue) return { system: 'temporal', kind: 'task_queue', name: ev.queue };
    if (ev.activity_type) return { system: 'temporal', kind: 'activity', name: ev.activity_type };
  }
  return null;
}

export const modelScope = (model: string): BreakerScope => ({ system: 'any', kind: 'model', name: model });

const KINDS: Record<string, BreakerScope['kind'][]> = { bullmq: ['queue'], celery: ['queue'], temporal: ['activity', 'task_queue'], any: ['model'] };

/** The inverse of breakerKey: `bullmq.queue.ingest` -> scope; null when the key is not a breaker key. */
export function parseBreakerKey(key: string): BreakerScope | null {
  const m = /^(bullmq|celery|temporal|any)\.(queue|activity|task_queue|model)\.(.+)$/.exec(key);
  if (!m || !KINDS[m[1]].includes(m[2] as BreakerScope['kind'])) return null;
  const name = m[3].replace(/=([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const scope = { system: m[1], kind: m[2], name } as BreakerScope;
  return breakerKey(scope) === key ? scope : null;
}

/** Could this policy have a breaker on this scope (for an admin forcing a scope no event opened yet)? */
export function policyCovers(p: Policy, scope: BreakerScope): boolean {
  if (scope.kind === 'model') return !!p.drift && (p.scope.model === undefined || p.scope.model === scope.name);
  if (!p.retryStorm) return false;
  if (p.scope.system !== 'any' && p.scope.system !== scope.system) return false;
  if (scope.kind === 'queue' || scope.kind === 'task_queue') return p.scope.queue === undefined || p.scope.queue === scope.name;
  return p.scope.activityType === undefined || p.scope.activityType === scope.name;
}
