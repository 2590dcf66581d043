// Inclusion proofs verified in the browser (WebCrypto: Ed25519 and SHA-256), against a public key the
// reviewer pinned, so the reviewer trusts the math, not the server that served the page. The same
// checks, in the same order, as ledger/checkpoints/proof.ts verifyInclusionProof:
//   1. the checkpoint is signed by the pinned key: Ed25519 over
//      `warden-checkpoint-v1\n<size>\n<root>\n<ts>\n`, key_id = sha256(SPKI DER) first 16 hex digits;
//   2. the record line, hashed as an RFC 6962 leaf H(0x00||line), with the audit path
//      (node H(0x01||left||right)) leads to the signed root;
//   3. the record's own hash is sha256(`${prev}\n${seq}\n${canonical JSON of event}`) and its line is
//      exactly the canonical encoding, at seq = leaf index + 1.
// No dependency: this file runs as is in the browser and under Node (test/console/proof.test.ts).

export const INCLUSION_PROOF_FORMAT = 'warden-inclusion-proof-v1';
const CONTEXT = 'warden-checkpoint-v1';
const HEX64 = /^[0-9a-f]{64}$/;
const enc = new TextEncoder();

const subtle = () => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error('WebCrypto is not available (the console needs a secure context: https or localhost)');
  return s;
};

export const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');

export function fromHex(h) {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function fromBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await subtle().digest('SHA-256', bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const leafHash = (lineBytes) => sha256(concat(new Uint8Array([0]), lineBytes));
export const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

/** The root an RFC 9162 §2.1.3.2 inclusion proof leads to, or null when it cannot be for (index, size). */
export async function rootFromInclusionProof(leaf, index, size, path) {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) { fn /= 2; sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** RFC 8785 canonical JSON of a value parsed from JSON (keys in UTF-16 code-unit order, ES number and string forms). */
export function canonicalJson(v) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${v} has no JSON form`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  throw new Error(`a ${typeof v} has no JSON form`);
}

/** DER bytes of an SPKI public key in PEM (`-----BEGIN PUBLIC KEY-----`). */
export function pemToDer(pem) {
  const m = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(String(pem));
  if (!m) throw new Error('not a PEM public key (expected -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)');
  return fromBase64(m[1].replace(/\s+/g, ''));
}

/** The key's id as checkpoints name it: sha256 of its SPKI DER, first 16 hex digits. */
export async function keyIdOf(der) {
  return hex(await sha256(der)).slice(0, 16);
}

export async function importPublicKey(pem) {
  const der = pemToDer(pem);
  const key = await subtle().importKey('spki', der, { name: 'Ed25519' }, false, ['verify']);
  return { key, keyId: await keyIdOf(der) };
}

/** null when the checkpoint is signed by the pinned key; otherwise what is wrong. */
export async function checkpointSignatureProblem(cp, pinned) {
  if (cp.key_id !== pinned.keyId) return `it is signed by key ${cp.key_id}, not by the pinned key (${pinned.keyId})`;
  let ok = false;
  try {
    ok = await subtle().verify({ name: 'Ed25519' }, pinned.key, fromBase64(cp.sig), enc.encode(`${CONTEXT}\n${cp.size}\n${cp.root}\n${cp.ts}\n`));
  } catch {
    ok = false;
  }
  return ok ? null : `its signature does not verify with key ${pinned.keyId}: the checkpoint was forged or altered`;
}

function checkpointShapeProblem(c) {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'is not a JSON object';
  if (c.version !== 1) return `has version ${JSON.stringify(c.version)}`;
  if (!(Number.isSafeInteger(c.size) && c.size >= 0)) return 'has no valid size';
  if (typeof c.root !== 'string' || !HEX64.test(c.root)) return 'has no 64-digit hex root';
  if (!(Number.isSafeInteger(c.ts) && c.ts > 0)) return 'has no valid ts';
  if (c.last_seq !== c.size) return `has last_seq ${JSON.stringify(c.last_seq)} but size ${c.size} (they must be equal)`;
  if (typeof c.key_id !== 'string' || !/^[0-9a-f]{16}$/.test(c.key_id)) return 'has no key_id';
  if (typeof c.sig !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(c.sig)) return 'has no base64 signature';
  return null;
}

/**
 * Checks an inclusion proof document with only the pinned key (from importPublicKey):
 * `{ ok: true, seq, record, checkpoint, steps }` or `{ ok: false, step, message, steps }`.
 */
export async function verifyInclusionProof(doc, pinned) {
  const steps = [];
  const fail = (step, message) => ({ ok: false, step, message, steps });
  if (typeof doc !== 'object' || doc === null || doc.format !== INCLUSION_PROOF_FORMAT) return fail('format', `not a ${INCLUSION_PROOF_FORMAT} document`);
  if (typeof doc.record !== 'string') return fail('format', 'record is not a string');
  if (!(Number.isSafeInteger(doc.leaf_index) && doc.leaf_index >= 0)) return fail('format', 'leaf_index is not a non-negative integer');
  if (!Array.isArray(doc.audit_path) || !doc.audit_path.every((h) => typeof h === 'string' && HEX64.test(h))) return fail('format', 'audit_path is not a list of 64-digit hex hashes');
  const shape = checkpointShapeProblem(doc.checkpoint);
  if (shape) return fail('format', `the checkpoint ${shape}`);
  const cp = doc.checkpoint;
  const index = doc.leaf_index;
  const when = new Date(cp.ts).toISOString();

  const sig = await checkpointSignatureProblem(cp, pinned);
  if (sig) return fail('signature', `the checkpoint (size ${cp.size}, signed ${when}) is not authentic: ${sig}`);
  steps.push(`signature ok: pinned key ${cp.key_id} signed root ${cp.root} for size ${cp.size} at ${when} (Ed25519, checked here)`);

  const root = await rootFromInclusionProof(await leafHash(enc.encode(doc.record)), index, cp.size, doc.audit_path.map(fromHex));
  if (root === null) return fail('inclusion', `an audit path of ${doc.audit_path.length} hashes cannot lead from leaf ${index} to the root of a tree of size ${cp.size}`);
  if (hex(root) !== cp.root) {
    return fail('inclusion', `the record line with this audit path leads to root ${hex(root)}, not to the signed root ${cp.root}: the record (or the path) was altered`);
  }
  steps.push(`inclusion ok: the record line is leaf ${index} of the signed tree (${doc.audit_path.length} SHA-256 hashes, checked here)`);

  let rec;
  try {
    rec = JSON.parse(doc.record);
  } catch (err) {
    return fail('record', `the record line is not JSON (${err.message})`);
  }
  if (typeof rec !== 'object' || rec === null || !Number.isSafeInteger(rec.seq) || typeof rec.prev !== 'string' || typeof rec.hash !== 'string' || typeof rec.event !== 'object' || rec.event === null) {
    return fail('record', 'the record line is not a ledger record (event, hash, prev, seq)');
  }
  const eventJson = canonicalJson(rec.event);
  const hash = hex(await sha256(enc.encode(`${rec.prev}\n${rec.seq}\n${eventJson}`)));
  if (hash !== rec.hash) return fail('record', `the record's hash does not match its content (sha256 gives ${hash}, the record says ${rec.hash})`);
  if (`{"event":${eventJson},"hash":"${rec.hash}","prev":"${rec.prev}","seq":${rec.seq}}` !== doc.record) return fail('record', "the record's bytes are not the canonical encoding of its content");
  if (rec.seq !== index + 1) return fail('record', `the record says seq ${rec.seq}, but leaf ${index} holds seq ${index + 1}`);
  steps.push(`record ok: seq ${rec.seq}, hash ${rec.hash} = sha256(prev, seq, event)`);
  return { ok: true, seq: rec.seq, record: rec, checkpoint: cp, steps };
}
