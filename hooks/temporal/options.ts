/**
 * Options shared by Warden's Temporal client interceptor, activity interceptor and worker sink, and
 * the small path lookups they use. Runs outside the workflow sandbox.
 */
import type { BreakerView } from '../../core/breakers.js';
import type { EventAttrs } from '../../core/event.js';
import { hookEmitter, type HookEmitter } from '../emitter.js';
import type { InputLimits } from '../../core/input.js';
import { Redactor, type RedactionOptions } from '../../core/redact.js';
import { WardenError } from '../../core/errors.js';

export interface WardenTemporalMetadata {
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
}

/** Dot paths into a call's arguments, starting with the argument index: `0.model`, `1.policy.version`. */
export type ArgumentPaths = Partial<Record<keyof WardenTemporalMetadata, string>>;

export type ApprovalDecision = 'granted' | 'denied';

export class WardenTemporalConfigError extends WardenError {
  override name = 'WardenTemporalConfigError';
  constructor(message: string) {
    super('WARDEN_CONFIG', message);
  }
}

export interface WardenTemporalOptions extends WardenTemporalMetadata {
  /** Where model/policy versions are read from when no header carries them. */
  argumentPaths?: ArgumentPaths;
  /** Numbers in results that drift policies watch: `{ score: 'quality.score' }` -> attrs['output.score']. */
  resultPaths?: Record<string, string>;
  /** Where the model that actually served a call is named in its result. */
  servedModelPaths?: { model?: string; model_version?: string };
  /**
   * Signal/update names that are approvals. A list decides by name (`reject`, `deny`, `decline` in the
   * name: denied, else granted) unless the payload has `approved: boolean`; a map names the decision.
   * Default `['approve', 'reject']`.
   */
  approvals?: string[] | Record<string, ApprovalDecision>;
  /** Redaction of inputs and error texts (paths, on top of the built-in key names and patterns). */
  redaction?: Partial<RedactionOptions>;
  inputLimits?: InputLimits;
  /** Breaker state the activity interceptor enforces (the KV-backed view from configureWarden, or a MapBreakerView). */
  breakers?: BreakerView;
  /** Where events go; defaults to the process-wide hook emitter. */
  emitter?: HookEmitter;
}

export const DEFAULT_APPROVALS = ['approve', 'reject'];

/** Options resolved once, so the hot path does no work deciding defaults. */
export interface Resolved {
  opts: WardenTemporalOptions;
  redactor: Redactor;
  approvals: Map<string, ApprovalDecision>;
  emit: HookEmitter['emit'];
}

export function resolveOptions(opts: WardenTemporalOptions = {}): Resolved {
  const approvals = new Map<string, ApprovalDecision>();
  const given = opts.approvals ?? DEFAULT_APPROVALS;
  if (Array.isArray(given)) {
    for (const n of given) {
      if (typeof n !== 'string' || !n) throw new WardenTemporalConfigError(`approvals: every entry must be a non-empty signal/update name, got ${JSON.stringify(n)}`);
      approvals.set(n, /reject|deny|decline/i.test(n) ? 'denied' : 'granted');
    }
  } else if (given && typeof given === 'object') {
    for (const [n, d] of Object.entries(given)) {
      if (d !== 'granted' && d !== 'denied') throw new WardenTemporalConfigError(`approvals.${n}: must be "granted" or "denied", got ${JSON.stringify(d)}`);
      approvals.set(n, d);
    }
  } else {
    throw new WardenTemporalConfigError('approvals: must be a list of signal/update names or a map of name -> "granted" | "denied"');
  }
  for (const [key, paths] of [['argumentPaths', opts.argumentPaths], ['resultPaths', opts.resultPaths], ['servedModelPaths', opts.servedModelPaths]] as const) {
    for (const [k, p] of Object.entries(paths ?? {})) {
      if (typeof p !== 'string' || !p) throw new WardenTemporalConfigError(`${key}.${k}: must be a dot path such as "0.model", got ${JSON.stringify(p)}`);
    }
  }
  const redactor = new Redactor({ paths: opts.redaction?.paths ?? [], maxDepth: opts.redaction?.maxDepth ?? 32 });
  const emitter = opts.emitter;
  // Resolved per call, so an emitter installed after the interceptors were built is used.
  const emit = (ev: Parameters<HookEmitter['emit']>[0]) => {
    try { (emitter ?? hookEmitter()).emit(ev); } catch { /* an emitter must not throw; if one does, the work goes on */ }
  };
  return { opts, redactor, approvals, emit };
}

/** The value at a dot path (`$.` prefix allowed); undefined when any step is missing. */
export function atPath(root: unknown, path: string): unknown {
  let node = root;
  for (const part of path.replace(/^\$\.?/, '').split('.').filter(Boolean)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Model/policy versions from the header stamp first, then configured argument paths, then defaults. */
export function metadataFrom(stamp: WardenTemporalMetadata | undefined, args: unknown[] | null, r: Resolved): Required<{ [K in keyof WardenTemporalMetadata]: string | null }> {
  const out = { model: null, model_version: null, policy: null, policy_version: null } as Record<keyof WardenTemporalMetadata, string | null>;
  for (const k of Object.keys(out) as (keyof WardenTemporalMetadata)[]) {
    const path = r.opts.argumentPaths?.[k];
    out[k] = stamp?.[k] ?? (path && args ? scalarText(atPath(args, path)) : undefined) ?? r.opts[k] ?? null;
  }
  return out;
}

/** attrs from a result: configured numeric outputs and the model that served the call. */
export function resultAttrs(result: unknown, r: Resolved): EventAttrs {
  const attrs: EventAttrs = {};
  if (result === undefined || result === null) return attrs;
  for (const [metric, path] of Object.entries(r.opts.resultPaths ?? {})) {
    const v = atPath(result, path);
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (Number.isFinite(n)) attrs[`output.${metric}`] = n;
  }
  const served = r.opts.servedModelPaths;
  if (served?.model) { const m = scalarText(atPath(result, served.model)); if (m !== undefined) attrs.served_model = r.redactor.redactText(m); }
  if (served?.model_version) { const m = scalarText(atPath(result, served.model_version)); if (m !== undefined) attrs.served_model_version = r.redactor.redactText(m); }
  return attrs;
}

/** Error texts can carry whole response bodies: redacted, then capped so one event stays small. */
export const MAX_ERROR_CHARS = 4096;
export function errorText(r: Resolved, message: string): string {
  const text = r.redactor.redactText(message);
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS)}… (${text.length - MAX_ERROR_CHARS} more characters)`;
}
