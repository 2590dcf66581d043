/** The sidecar's trace export: OTLP/HTTP when an endpoint is configured, nothing otherwise. */
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { WardenConfig } from './config.js';

export interface TraceExport { processor: SpanProcessor; resource: Resource; endpoint: string | null }

export function createTraceExport(cfg: WardenConfig['tracing']): TraceExport {
  const resource = resourceFromAttributes({ 'service.name': cfg.serviceName });
  if (!cfg.endpoint) return { processor: new NoopSpanProcessor(), resource, endpoint: null };
  // OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; the signal path is appended per the OTLP spec.
  const url = `${cfg.endpoint.replace(/\/+$/, '')}/v1/traces`;
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url }), {
    maxQueueSize: 20_000,
    maxExportBatchSize: 1000,
    scheduledDelayMillis: 1000,
  });
  return { processor, resource, endpoint: url };
}
