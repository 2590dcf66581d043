/**
 * The worker thread of verify's parallel fast path (verify.ts): checks the parts it is sent, one at a
 * time, and answers each `{id, part}` with `{id, result}` (a PartResult, or null: "not sure") or
 * `{id, error}` (the part could not be read; the caller then redoes the work on its own thread, where
 * the same error surfaces as it always did).
 */
import { parentPort } from 'node:worker_threads';
import { checkPart, type PartResult, type PartSpec } from './verify-part.js';

export interface PartRequest {
  id: number;
  part: PartSpec;
}

export type PartReply = { id: number; result: PartResult | null } | { id: number; error: string };

const port = parentPort;
if (port) {
  port.on('message', (req: PartRequest) => {
    let reply: PartReply;
    try {
      reply = { id: req.id, result: checkPart(req.part) };
    } catch (err) {
      reply = { id: req.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
}
