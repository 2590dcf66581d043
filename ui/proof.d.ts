// Types for ui/proof.js (plain ES module served to the browser as is), for the tests that import it.
export interface PinnedKey { key: CryptoKey; keyId: string }
export type BrowserProofVerdict =
  | { ok: true; seq: number; record: unknown; checkpoint: unknown; steps: string[] }
  | { ok: false; step: 'format' | 'signature' | 'inclusion' | 'record'; message: string; steps: string[] };
export const INCLUSION_PROOF_FORMAT: string;
export function importPublicKey(pem: string): Promise<PinnedKey>;
export function verifyInclusionProof(doc: unknown, pinned: PinnedKey): Promise<BrowserProofVerdict>;
export function canonicalJson(v: unknown): string;
export function keyIdOf(der: Uint8Array): Promise<string>;
export function pemToDer(pem: string): Uint8Array;
