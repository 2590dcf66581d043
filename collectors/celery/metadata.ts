/**
 * Model/policy versions and the correlation ID of a Celery task, read by configured paths into its
 * arguments (`kwargs.model_version`, `args.0.model`) or, for served model and outputs, its result
 * (`result.model`), as `bullmq.metadata` reads a BullMQ job's data.
 */
import type { MetadataPaths } from '../../core/metadata-paths.js';

/** Celery reads the same fields as every collector (`kwargs.<path>`, `args.<i>`, `result.<path>`). */
export type CeleryMetadataPaths = MetadataPaths;

export const CELERY_PATH = /^(args|kwargs|result)(\.[^.\s]+)+$/;

export function at(root: Record<string, unknown>, path: string | undefined): string | null {
  if (!path) return null;
  let node: unknown = root;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[part];
  }
  if (typeof node === 'string') return node;
  if (typeof node === 'number' || typeof node === 'boolean') return String(node);
  return null;
}
