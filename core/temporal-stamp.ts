/**
 * The pure half of Warden's Temporal `warden` header, shared by the hooks (which write and read it in
 * workers and in the workflow sandbox) and the sidecar's history collector (which reads it from a
 * run's history). No imports: this file is bundled into the workflow sandbox too (no node:*, no
 * crypto), so everything here is deterministic.
 */

export interface WardenTemporalStamp {
  /** Correlation ID shared by everything done for one piece of work. */
  cid: string;
  /** W3C traceparent of the parent span (client span, workflow run span). */
  tp?: string;
  tst?: string;
  /** Span ID of the parent when no traceparent is known (trace ID is then derived from `cid`). */
  psid?: string;
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
  /**
   * What a Warden client already recorded, so the workflow does not record it again: 1 = the start
   * and the message; 2 = the message only (signalWithStart and update-with-start may reach a run
   * that already exists, so the client cannot know whether it started one).
   */
  rec?: 1 | 2;
}

const STAMP_KEYS = ['cid', 'tp', 'tst', 'psid', 'model', 'model_version', 'policy', 'policy_version'] as const;

/** A decoded `warden` header payload as a stamp; undefined when it is not one (never throws). */
export function stampFromValue(v: unknown): WardenTemporalStamp | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.cid !== 'string') return undefined;
  const out: WardenTemporalStamp = { cid: o.cid };
  for (const k of STAMP_KEYS) if (typeof o[k] === 'string') (out as unknown as Record<string, string>)[k] = o[k] as string;
  if (o.rec === 1 || o.rec === 2) out.rec = o.rec;
  return out;
}

/**
 * A span ID computable inside the workflow sandbox (no crypto there): two FNV-1a 32-bit lanes with
 * different offsets. The sidecar uses the same function, so the workflow run span it rebuilds is the
 * parent the workflow already handed to its activities and children.
 */
export function sandboxSpanId(...parts: (string | number)[]): string {
  const text = `warden.span\0${parts.join('\0')}`;
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  const hex = (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
  return hex === '0000000000000000' ? '0000000000000001' : hex;
}

/** The span ID of one workflow run (the span the sidecar rebuilds from workflow.* events). */
export function workflowRunSpanId(workflowId: string, runId: string): string {
  return sandboxSpanId('temporal', 'workflow', workflowId, runId);
}
