/** Size limits on a request: the URL, the declared body length, and the body actually sent. */
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.js';

/** 414 for a URL over `maxUrlBytes`, 413 for a declared content-length over `maxBodyBytes` (before reading anything). */
export function checkDeclaredSizes(req: IncomingMessage, limits: { maxUrlBytes: number; maxBodyBytes: number }): void {
  if (Buffer.byteLength(req.url ?? '') > limits.maxUrlBytes) throw new ApiError(414, `the URL is longer than ${limits.maxUrlBytes} bytes`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limits.maxBodyBytes) throw new ApiError(413, `the request body is larger than ${limits.maxBodyBytes} bytes`);
}

/** Reads a request body (kept only when `keep`), refusing one larger than the limit even without content-length. */
export function drainBody(req: IncomingMessage, max: number, keep: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) { reject(new ApiError(413, `the request body is larger than ${max} bytes`)); req.pause(); return; }
      if (keep) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
