/**
 * Drift findings from events: version drift (an unapproved model or policy version, a served model
 * that differs from the requested one, two versions of a model inside one correlation ID) and
 * statistical drift of numeric outputs (`attrs['output.<metric>']`) against a baseline window.
 */
import type { WardenEvent } from '../../core/event.js';
import { COMPLETION_KINDS } from '../../core/kinds.js';
import { detectDrift, type DriftResult } from './drift-stats.js';
import type { DriftConfig, DriftMetricConfig } from '../schema.js';

export interface VersionFinding {
  finding: 'unapproved_model_version' | 'unapproved_policy_version' | 'served_model_mismatch' | 'version_skew';
  reason: string;
  evidence: Record<string, string>;
}

export const isCompletion = (ev: WardenEvent) => COMPLETION_KINDS.has(ev.kind);

/** A bounded map: the oldest entries are forgotten first. */
export class Lru<K, V> {
  private readonly m = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined { return this.m.get(k); }
  has(k: K): boolean { return this.m.has(k); }
  set(k: K, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as K);
  }
}

export class VersionChecks {
  /** correlation ID -> model -> first version seen. */
  private readonly seen = new Lru<string, Map<string, string>>(50_000);

  check(cfg: DriftConfig, ev: WardenEvent): VersionFinding[] {
    const out: VersionFinding[] = [];
    const approved = ev.model && Object.hasOwn(cfg.approvedModels, ev.model) ? cfg.approvedModels[ev.model] : undefined; // not `constructor` & co.
    if (approved && ev.model_version && !approved.includes(ev.model_version)) {
      out.push({
        finding: 'unapproved_model_version',
        reason: `model ${ev.model} version ${ev.model_version} is not approved (approved: ${approved.join(', ') || 'none'})`,
        evidence: { model: ev.model!, model_version: ev.model_version, approved: approved.join(',') },
      });
    }
    const approvedPolicy = ev.policy && Object.hasOwn(cfg.approvedPolicies, ev.policy) ? cfg.approvedPolicies[ev.policy] : undefined;
    if (approvedPolicy && ev.policy_version && !approvedPolicy.includes(ev.policy_version)) {
      out.push({
        finding: 'unapproved_policy_version',
        reason: `policy ${ev.policy} version ${ev.policy_version} is not approved (approved: ${approvedPolicy.join(', ') || 'none'})`,
        evidence: { policy: ev.policy!, policy_version: ev.policy_version, approved: approvedPolicy.join(',') },
      });
    }
    const served = ev.attrs.served_model;
    const servedVersion = ev.attrs.served_model_version;
    if (cfg.servedMustMatch && isCompletion(ev)) {
      const modelDiffers = typeof served === 'string' && ev.model !== null && served !== ev.model;
      const versionDiffers = servedVersion !== undefined && servedVersion !== null && ev.model_version !== null && String(servedVersion) !== ev.model_version;
      if (modelDiffers || versionDiffers) {
        out.push({
          finding: 'served_model_mismatch',
          reason: `requested ${ev.model}@${ev.model_version ?? '?'} but ${String(served ?? ev.model)}@${String(servedVersion ?? '?')} was served`,
          evidence: { requested: `${ev.model}@${ev.model_version ?? ''}`, served: `${String(served ?? ev.model)}@${String(servedVersion ?? '')}` },
        });
      }
    }
    if (cfg.versionSkew && ev.correlation_id && ev.model && ev.model_version) {
      let models = this.seen.get(ev.correlation_id);
      if (!models) { models = new Map(); this.seen.set(ev.correlation_id, models); }
      const first = models.get(ev.model);
      if (first === undefined) models.set(ev.model, ev.model_version);
      else if (first !== ev.model_version) {
        out.push({
          finding: 'version_skew',
          reason: `correlation ${ev.correlation_id} uses model ${ev.model} at versions ${first} and ${ev.model_version}`,
          evidence: { model: ev.model, first_version: first, other_version: ev.model_version },
        });
      }
    }
    return out;
  }
}

/** Reference = the first `baselineSize` values; current = the newest `windowSize` values after it. */
export class OutputDrift {
  readonly reference: number[] = [];
  private readonly current: number[] = [];
  private sinceEval = 0;
  last: DriftResult | null = null;
  drifting = false;

  constructor(readonly cfg: DriftMetricConfig) {}

  /**
   * Starts the current window over (the reference stays): a half-open drift breaker judges its
   * probes on values observed after it half-opened, not on a window still full of drifted values.
   * `last` is null until a result over fresh values only is computed.
   */
  restartCurrent(): void {
    this.current.length = 0;
    this.sinceEval = 0;
    this.last = null;
  }

  /** Adds a value; returns a fresh result when one was computed (every tenth of a window once full). */
  add(v: number): DriftResult | null {
    if (!Number.isFinite(v)) return null;
    if (this.reference.length < this.cfg.baselineSize) { this.reference.push(v); return null; }
    this.current.push(v);
    if (this.current.length > this.cfg.windowSize) this.current.shift();
    if (this.current.length < this.cfg.windowSize) return null;
    if (++this.sinceEval < Math.max(1, Math.floor(this.cfg.windowSize / 10)) && this.last) return null;
    this.sinceEval = 0;
    this.last = detectDrift(this.reference, this.current, this.cfg.method, this.cfg.threshold);
    return this.last;
  }
}
