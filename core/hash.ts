/** sha256 helpers: one place for event digests, derived IDs, the ledger chain and Merkle nodes. */
import crypto from 'node:crypto';

// crypto.hash (Node >= 20.12) is about twice as fast as createHash for one-shot digests of short input.
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;

/** sha256 of a string (or bytes: verify's fast path hashes a line's bytes without decoding them), hex. */
export const sha256Hex: (data: string | Uint8Array) => string =
  typeof oneShot === 'function'
    ? (data) => oneShot('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** sha256 of bytes (or a string), as a Buffer: Merkle leaves and nodes. */
export const sha256Bytes: (data: Buffer | string) => Buffer =
  typeof oneShot === 'function'
    ? (data) => oneShot('sha256', data, 'buffer') as unknown as Buffer
    : (data) => crypto.createHash('sha256').update(data).digest();
