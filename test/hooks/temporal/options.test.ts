import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { wardenClientInterceptors, wardenWorker, WardenTemporalConfigError } from '../../../hooks/temporal/index.js';
import { readStamp, readTracerData, TRACER_HEADER, WARDEN_HEADER, withStamp, withTracerData, workflowRunSpanId } from '../../../hooks/temporal/headers.js';
import { stableSpanId } from '../../../core/ids.js';

describe('warden/temporal options and header codec', () => {
  it('bad options fail at setup with a named error naming the key', () => {
    expect(() => wardenWorker({ approvals: ['approve', ''] })).toThrow(WardenTemporalConfigError);
    expect(() => wardenWorker({ approvals: { approve: 'yes' as never } })).toThrow(/approvals\.approve: must be "granted" or "denied"/);
    expect(() => wardenClientInterceptors({ resultPaths: { score: 3 as never } })).toThrow(/resultPaths\.score/);
    expect(() => wardenWorker({ argumentPaths: { model: '' } })).toThrow(/argumentPaths\.model/);
  });

  it('wardenWorker keeps the worker\'s own interceptors and sinks, Warden first', () => {
    const mine = () => ({});
    const parts = wardenWorker({}, { interceptors: { activity: [mine], workflowModules: ['/app/otel.js'] }, sinks: { app: { log: { fn: () => undefined } } } });
    expect(parts.interceptors.activity).toHaveLength(2);
    expect(parts.interceptors.activity![1]).toBe(mine);
    expect(parts.interceptors.workflowModules![1]).toBe('/app/otel.js');
    expect(parts.interceptors.workflowModules![0]).toMatch(/hooks\/temporal\/workflow\.(ts|js)$/);
    expect(Object.keys(parts.sinks).sort()).toEqual(['app', 'warden']);
  });

  it('round-trips the Warden stamp; malformed or foreign headers read as absent, never throw', () => {
    const h = withStamp({}, { cid: 'wc_1', tp: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', model: 'm', rec: 1, policy: undefined });
    expect(readStamp(h)).toEqual({ cid: 'wc_1', tp: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', model: 'm', rec: 1 });
    expect(readStamp({ [WARDEN_HEADER]: { metadata: { encoding: new TextEncoder().encode('json/plain') }, data: new TextEncoder().encode('{not json') } })).toBeUndefined();
    expect(readStamp({ [WARDEN_HEADER]: defaultPayloadConverter.toPayload({ cid: 42 }) })).toBeUndefined();
    expect(readStamp({ [WARDEN_HEADER]: { metadata: { encoding: new TextEncoder().encode('binary/unknown') }, data: new Uint8Array([1]) } })).toBeUndefined();
    expect(readTracerData({ [TRACER_HEADER]: defaultPayloadConverter.toPayload({ traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }) })).toBeUndefined();
    expect(readStamp(undefined)).toBeUndefined();
  });

  it('_tracer-data is written only where absent', () => {
    const theirs = withTracerData({}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const again = withTracerData(theirs, { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' });
    expect(readTracerData(again)?.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('run span IDs are stable, 16 hex digits, distinct per run', () => {
    const a = workflowRunSpanId('wf', 'run-1');
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(workflowRunSpanId('wf', 'run-1')).toBe(a);
    const ids = new Set(Array.from({ length: 5000 }, (_, i) => workflowRunSpanId(`wf-${i % 50}`, `run-${i}`)));
    expect(ids.size).toBe(5000);
    expect(a).not.toBe(stableSpanId('temporal', 'workflow', 'wf', 'run-1')); // a different function, on purpose: no crypto in the sandbox
  });
});
