/**
 * The console's in-browser verifier (ui/proof.js, WebCrypto only) agrees with the Node verifier
 * (ledger/checkpoints/proof.ts) on real proofs from a real spool: every record verifies, and each way
 * a proof can lie fails at the same step.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson as coreCanonical } from '../../core/canonical.js';
import { proveInclusion, verifyInclusionProof as nodeVerify, type InclusionProof, type LedgerRecord, type SigningKey } from '../../ledger/index.js';
import { canonicalJson, importPublicKey, verifyInclusionProof } from '../../ui/proof.js';
import { buildCheckpointed } from '../ledger/checkpoint-helpers.js';
import { removeDir, tempDir } from '../harness/ledger.js';

let dir: string;
let key: SigningKey;
let records: LedgerRecord[];
let pem: string;

beforeAll(async () => {
  dir = await tempDir();
  ({ key, records } = await buildCheckpointed(dir, 23, 8, 3));
  pem = await fs.readFile(key.publicFile, 'utf8');
});
afterAll(async () => { await removeDir(dir); });

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('ui/proof.js (the browser verifier)', () => {
  it('verifies every record of a real ledger, as the Node verifier does', async () => {
    const pinned = await importPublicKey(pem);
    expect(pinned.keyId).toBe(key.keyId);
    for (const r of records) {
      const proof = await proveInclusion(dir, r.event.event_id);
      const v = await verifyInclusionProof(clone(proof), pinned);
      if (!v.ok) expect.fail(`seq ${r.seq}: ${v.step}: ${v.message}`);
      expect(v.seq).toBe(r.seq);
      expect(nodeVerify(clone(proof), key.publicKey).ok).toBe(true);
    }
  });

  it('fails at the same step as the Node verifier for an altered record, path, checkpoint or another key', async () => {
    const pinned = await importPublicKey(pem);
    const proof = await proveInclusion(dir, records[9].event.event_id);
    const other = crypto.generateKeyPairSync('ed25519');
    const otherPem = other.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const cases: [string, (p: InclusionProof) => void, 'signature' | 'inclusion' | 'record' | 'format'][] = [
      ['one byte of the record', (p) => { p.record = p.record.replace('"attempt":1', '"attempt":2'); }, 'inclusion'],
      ['a path hash', (p) => { p.audit_path[0] = 'ab'.repeat(32); }, 'inclusion'],
      ['the signed root', (p) => { p.checkpoint.root = 'cd'.repeat(32); }, 'signature'],
      ['the signed size', (p) => { p.checkpoint.size += 1; p.checkpoint.last_seq += 1; }, 'signature'],
      ['a size unlike its last_seq', (p) => { p.checkpoint.size += 1; }, 'format'],
      ['the leaf index', (p) => { p.leaf_index += 1; }, 'inclusion'],
      ['not a proof', (p) => { (p as { format: string }).format = 'x'; }, 'format'],
    ];
    for (const [what, mutate, step] of cases) {
      const p = clone(proof);
      mutate(p);
      expect(await verifyInclusionProof(p, pinned), what).toMatchObject({ ok: false, step });
      expect(nodeVerify(p, key.publicKey), what).toMatchObject({ ok: false, step });
    }
    expect(await verifyInclusionProof(clone(proof), await importPublicKey(otherPem))).toMatchObject({ ok: false, step: 'signature', message: expect.stringMatching(/not by the pinned key/) });
  });

  it('a record re-hashed after its content changed passes no path: the record step is reached only by a consistent line', async () => {
    const pinned = await importPublicKey(pem);
    const proof = await proveInclusion(dir, records[3].event.event_id);
    const rec = JSON.parse(proof.record) as LedgerRecord;
    rec.event.queue = 'elsewhere';
    expect(await verifyInclusionProof({ ...clone(proof), record: JSON.stringify(rec) }, pinned)).toMatchObject({ ok: false, step: 'inclusion' });
  });

  it('its canonical JSON is the ledger\'s (RFC 8785) for what records hold', () => {
    const samples: unknown[] = [
      records[0].event, { b: 1, a: [1, 'x', null, true], 'é': { z: -0, y: 1e21, x: 1.5e-7 } }, 'line\nbreak "quoted" \u0001 \u2028', { '\u00e9': 1, e: 2, E: 3 },
    ];
    for (const s of samples) expect(canonicalJson(JSON.parse(JSON.stringify(s)))).toBe(coreCanonical(JSON.parse(JSON.stringify(s))));
  });
});
