/**
 * RFC 6962 Merkle trees: the published Certificate Transparency vectors, and an independent
 * brute-force implementation of the RFC's recursive definitions (MTH, PATH, SUBPROOF, written here
 * straight from the text with createHash) on every size 1..300.
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT, MemoryTree, MerkleFrontier, NodeCollector, consistencyRanges, inclusionRanges, leafHash, nodeHash,
  rootFromInclusionProof, rootOf, verifyConsistency, verifyInclusion,
} from '../../ledger/checkpoints/merkle.js';

const hex = (b: Buffer) => b.toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');

// --- The reference: RFC 6962 §2.1, literally. -------------------------------------------------
const H = (...parts: Buffer[]) => { const h = crypto.createHash('sha256'); for (const p of parts) h.update(p); return h.digest(); };
const k = (n: number) => { let x = 1; while (x * 2 < n) x *= 2; return x; };

class Reference {
  private readonly memo = new Map<string, Buffer>();
  constructor(private readonly data: Buffer[]) {}
  /** MTH(D[lo:hi]) */
  mth(lo: number, hi: number): Buffer {
    const key = `${lo}:${hi}`;
    let v = this.memo.get(key);
    if (!v) {
      const n = hi - lo;
      if (n === 0) v = H();
      else if (n === 1) v = H(Buffer.from([0]), this.data[lo]);
      else v = H(Buffer.from([1]), this.mth(lo, lo + k(n)), this.mth(lo + k(n), hi));
      this.memo.set(key, v);
    }
    return v;
  }
  /** PATH(m, D[lo:hi]) */
  path(m: number, lo: number, hi: number): Buffer[] {
    const n = hi - lo;
    if (n === 1) return [];
    const s = k(n);
    return m < s ? [...this.path(m, lo, lo + s), this.mth(lo + s, hi)] : [...this.path(m - s, lo + s, hi), this.mth(lo, lo + s)];
  }
  /** SUBPROOF(m, D[lo:hi], b) */
  subproof(m: number, lo: number, hi: number, b: boolean): Buffer[] {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)];
    const s = k(n);
    return m <= s
      ? [...this.subproof(m, lo, lo + s, b), this.mth(lo + s, hi)]
      : [...this.subproof(m - s, lo + s, hi, false), this.mth(lo, lo + s)];
  }
}

// --- Certificate Transparency / transparency-dev reference vectors. -----------------------------
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// index is 0-based here (the Go vectors count leaves from 1).
const CT_INCLUSION = [
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { index: 1, size: 5, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];
const CT_CONSISTENCY = [
  { m: 1, n: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { m: 6, n: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { m: 2, n: 5, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
  { m: 6, n: 7, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];

// A deterministic PRNG, so a failure is reproducible.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32; };
}
const rand = rng(6962);
const MAX = 300;
const DATA = Array.from({ length: MAX }, () => Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))));
const REF = new Reference(DATA);
const LEAVES = DATA.map((d) => leafHash(d));

describe('RFC 6962 hashing', () => {
  it('the empty tree is SHA-256 of the empty string; leaves and nodes are domain-separated', () => {
    expect(hex(EMPTY_ROOT)).toBe(CT_ROOTS[0]);
    expect(hex(rootOf([]))).toBe(CT_ROOTS[0]);
    expect(hex(leafHash(Buffer.alloc(0)))).toBe(CT_ROOTS[1]);
    expect(leafHash('a "string" é')).toEqual(leafHash(Buffer.from('a "string" é', 'utf8')));
    const a = leafHash('a');
    expect(nodeHash(a, a)).toEqual(H(Buffer.from([1]), a, a));
    expect(() => nodeHash(a, Buffer.alloc(31))).toThrow(RangeError);
  });

  it('matches the Certificate Transparency roots for sizes 0..8, built every way', () => {
    const leaves = CT_LEAVES.map((d) => leafHash(d));
    const f = new MerkleFrontier();
    const tree = new MemoryTree(leaves);
    expect(hex(f.root())).toBe(CT_ROOTS[0]);
    for (let n = 1; n <= 8; n++) {
      f.append(leaves[n - 1]);
      expect(hex(f.root()), `frontier ${n}`).toBe(CT_ROOTS[n]);
      expect(hex(rootOf(leaves.slice(0, n))), `rootOf ${n}`).toBe(CT_ROOTS[n]);
      expect(hex(tree.root(n)), `MemoryTree ${n}`).toBe(CT_ROOTS[n]);
    }
  });

  it('produces and accepts the reference inclusion and consistency proofs', () => {
    const leaves = CT_LEAVES.map((d) => leafHash(d));
    const tree = new MemoryTree(leaves);
    for (const v of CT_INCLUSION) {
      expect(tree.inclusionProof(v.index, v.size).map(hex)).toEqual(v.proof);
      expect(verifyInclusion(leaves[v.index], v.index, v.size, v.proof.map(unhex), unhex(CT_ROOTS[v.size]))).toBe(true);
    }
    for (const v of CT_CONSISTENCY) {
      expect(tree.consistencyProof(v.m, v.n).map(hex)).toEqual(v.proof);
      expect(verifyConsistency(v.m, v.n, unhex(CT_ROOTS[v.m]), unhex(CT_ROOTS[v.n]), v.proof.map(unhex))).toBe(true);
    }
  });

  it('handles the edge cases of consistency the way RFC 9162 and transparency-dev do', () => {
    const r1 = unhex(CT_ROOTS[1]);
    const r2 = unhex(CT_ROOTS[2]);
    expect(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])).toBe(true);
    expect(verifyConsistency(0, 5, EMPTY_ROOT, r2, [])).toBe(true);
    expect(verifyConsistency(1, 1, r1, r1, [])).toBe(true);
    expect(verifyConsistency(1, 1, r1, r2, [])).toBe(false); // same size, different roots: a fork
    expect(verifyConsistency(1, 1, r1, r1, [EMPTY_ROOT])).toBe(false);
    expect(verifyConsistency(2, 1, r2, r1, [])).toBe(false); // the log shrank
    expect(verifyConsistency(1, 2, r1, r2, [])).toBe(false); // empty proof
    expect(rootFromInclusionProof(leafHash('x'), 0, 0, [])).toBeNull();
    expect(verifyInclusion(leafHash('x'), 0, 1, [], leafHash('x'))).toBe(true);
    expect(verifyInclusion(leafHash('x'), 1, 1, [], leafHash('x'))).toBe(false);
  });
});

describe('against the brute-force RFC definitions, every size 1..300', () => {
  it('roots: frontier (also serialized and restored midway), rootOf and MemoryTree', () => {
    const f = new MerkleFrontier();
    for (let n = 1; n <= MAX; n++) {
      f.append(LEAVES[n - 1]);
      const want = REF.mth(0, n);
      expect(f.root().equals(want), `frontier root of ${n}`).toBe(true);
      const restored = MerkleFrontier.fromJSON(JSON.parse(JSON.stringify(f)));
      expect(restored.size).toBe(n);
      expect(restored.root().equals(want)).toBe(true);
      if (n < MAX) {
        restored.append(LEAVES[n]);
        expect(restored.root().equals(REF.mth(0, n + 1)), `restored at ${n}, then one more`).toBe(true);
      }
    }
    const tree = new MemoryTree(LEAVES);
    for (let n = 0; n <= MAX; n++) expect(tree.root(n).equals(REF.mth(0, n)), `MemoryTree root ${n}`).toBe(true);
    expect(rootOf(LEAVES.slice(0, 137)).equals(REF.mth(0, 137))).toBe(true);
  });

  it('inclusion proofs for every leaf of every size: equal to PATH, and they verify', () => {
    const tree = new MemoryTree(LEAVES);
    let proofs = 0;
    for (let n = 1; n <= MAX; n++) {
      const root = REF.mth(0, n);
      for (let i = 0; i < n; i++) {
        const proof = tree.inclusionProof(i, n);
        const want = REF.path(i, 0, n);
        expect(proof.length).toBe(want.length);
        for (let j = 0; j < want.length; j++) if (!proof[j].equals(want[j])) expect.fail(`PATH(${i}, D[${n}])[${j}] differs`);
        if (!verifyInclusion(LEAVES[i], i, n, proof, root)) expect.fail(`proof of leaf ${i} in size ${n} did not verify`);
        proofs++;
      }
    }
    expect(proofs).toBe((MAX * (MAX + 1)) / 2);
  });

  it('consistency proofs: every pair up to size 64 and 2000 random pairs up to 300 equal SUBPROOF and verify', () => {
    const tree = new MemoryTree(LEAVES);
    const pairs: [number, number][] = [];
    for (let n = 1; n <= 64; n++) for (let m = 0; m <= n; m++) pairs.push([m, n]);
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(rand() * MAX);
      pairs.push([Math.floor(rand() * (n + 1)), n]);
    }
    for (const [m, n] of pairs) {
      const proof = tree.consistencyProof(m, n);
      const want = m === 0 || m === n ? [] : REF.subproof(m, 0, n, true);
      expect(proof.map(hex), `PROOF(${m}, D[${n}])`).toEqual(want.map(hex));
      if (!verifyConsistency(m, n, REF.mth(0, m), REF.mth(0, n), proof)) expect.fail(`consistency ${m} -> ${n} did not verify`);
    }
  });

  it('a one-pass NodeCollector gives the same proofs as the in-memory tree', () => {
    const tree = new MemoryTree(LEAVES);
    const asks: { kind: 'incl' | 'cons'; a: number; b: number }[] = [];
    for (let i = 0; i < 300; i++) {
      const n = 1 + Math.floor(rand() * MAX);
      asks.push({ kind: 'incl', a: Math.floor(rand() * n), b: n });
      asks.push({ kind: 'cons', a: Math.floor(rand() * (n + 1)), b: n });
    }
    const c = new NodeCollector();
    for (const q of asks) for (const r of q.kind === 'incl' ? inclusionRanges(q.a, q.b) : consistencyRanges(q.a, q.b)) c.want(r);
    for (const leaf of LEAVES) c.push(leaf);
    for (const q of asks) {
      const got = q.kind === 'incl' ? c.inclusionProof(q.a, q.b) : c.consistencyProof(q.a, q.b);
      const want = q.kind === 'incl' ? tree.inclusionProof(q.a, q.b) : tree.consistencyProof(q.a, q.b);
      expect(got.map(hex)).toEqual(want.map(hex));
    }
    expect(c.frontier.root().equals(REF.mth(0, MAX))).toBe(true);
    expect(() => new NodeCollector().rangeHash({ lo: 0, hi: 4 })).toThrow(/not requested/);
  });

  it('rejects every tampered proof (the transparency-dev probes)', () => {
    const tree = new MemoryTree(LEAVES);
    const other = H(Buffer.from('abacaba'));
    for (const n of [2, 3, 5, 8, 13, 64, 100, 255, 300]) {
      const root = tree.root(n);
      for (const i of [0, 1, n >> 1, n - 2, n - 1].filter((x) => x >= 0 && x < n)) {
        const p = tree.inclusionProof(i, n);
        const bad: [string, number, number, Buffer[], Buffer, Buffer][] = [
          ['index-1', i - 1, n, p, LEAVES[i], root], ['index+1', i + 1, n, p, LEAVES[i], root], ['index^2', i ^ 2, n, p, LEAVES[i], root],
          ['size*2', i, n * 2, p, LEAVES[i], root], ['size/2', i, n >> 1, p, LEAVES[i], root],
          ['wrong leaf', i, n, p, leafHash('WrongLeaf'), root], ['empty root', i, n, p, LEAVES[i], EMPTY_ROOT], ['other root', i, n, p, LEAVES[i], other],
          ['trailing root', i, n, [...p, root], LEAVES[i], root], ['preceding root', i, n, [root, ...p], LEAVES[i], root],
        ];
        if (p.length > 0) bad.push(['removed component', i, n, p.slice(0, -1), LEAVES[i], root]);
        if (p.length > 1) bad.push(['inserted component', i, n, [p[0], other, ...p.slice(1)], LEAVES[i], root]);
        p.forEach((_, j) => {
          const q = p.map((h) => Buffer.from(h));
          q[j][0] ^= 8;
          bad.push([`bit flip in [${j}]`, i, n, q, LEAVES[i], root]);
        });
        for (const [desc, bi, bn, bp, bl, br] of bad) {
          if (bi === i && bn === n && bp === p && bl === LEAVES[i] && br === root) continue;
          expect(verifyInclusion(bl, bi, bn, bp, br), `leaf ${i} of ${n}: ${desc}`).toBe(false);
        }
      }
      for (const m of [1, 2, 3, n >> 1, n - 1].filter((x) => x > 0 && x < n)) {
        const p = tree.consistencyProof(m, n);
        const r1 = tree.root(m);
        const bad: [string, number, number, Buffer, Buffer, Buffer[]][] = [
          ['m-1', m - 1, n, r1, root, p], ['m+1', m + 1, n, r1, root, p], ['m^2', m ^ 2, n, r1, root, p],
          ['n*2', m, n * 2, r1, root, p], ['n/2', m, n >> 1, r1, root, p],
          ['wrong root1', m, n, other, root, p], ['wrong root2', m, n, r1, other, p], ['swapped roots', m, n, root, r1, p],
          ['empty proof', m, n, r1, root, []], ['trailing root1', m, n, r1, root, [...p, r1]], ['trailing root2', m, n, r1, root, [...p, root]],
          ['preceding root1', m, n, r1, root, [r1, ...p]], ['preceding root2', m, n, r1, root, [root, ...p]], ['preceding proof[0]', m, n, r1, root, [p[0], ...p]],
          ['truncated', m, n, r1, root, p.slice(0, -1)],
        ];
        p.forEach((_, j) => {
          const q = p.map((h) => Buffer.from(h));
          q[j][0] ^= 16;
          bad.push([`bit flip in [${j}]`, m, n, r1, root, q]);
        });
        for (const [desc, bm, bn, b1, b2, bp] of bad) {
          // m^2 can land on a size whose proof happens to be this one only if the trees agree, which random leaves rule out.
          if (bm === m && bn === n && b1 === r1 && b2 === root && bp === p) continue;
          expect(verifyConsistency(bm, bn, b1, b2, bp), `${m} -> ${n}: ${desc}`).toBe(false);
        }
      }
    }
  });
});

describe('shapes beyond 32-bit sizes (no hashing: the ranges alone)', () => {
  it('inclusion ranges plus the leaf tile [0, size) exactly; consistency ranges are disjoint', () => {
    for (const [i, n] of [[2 ** 40 + 5, 2 ** 41 + 3], [0, 2 ** 52 + 1], [2 ** 33 - 1, 2 ** 33], [3 * 2 ** 31 + 7, 2 ** 50 - 3]]) {
      const rs = [...inclusionRanges(i, n), { lo: i, hi: i + 1 }].sort((a, b) => a.lo - b.lo);
      expect(rs[0].lo).toBe(0);
      for (let j = 1; j < rs.length; j++) expect(rs[j].lo).toBe(rs[j - 1].hi);
      expect(rs[rs.length - 1].hi).toBe(n);
      if (i + 1 === n) {
        expect(consistencyRanges(n, n)).toEqual([]);
        continue;
      }
      const cs = consistencyRanges(i + 1, n).sort((a, b) => a.lo - b.lo);
      for (let j = 1; j < cs.length; j++) expect(cs[j].lo).toBeGreaterThanOrEqual(cs[j - 1].hi);
      expect(cs[cs.length - 1].hi).toBe(n);
    }
  });

  it('a frontier refuses a state that cannot be a tree of its size', () => {
    expect(() => MerkleFrontier.fromJSON({ size: 3, nodes: [hex(EMPTY_ROOT)] })).toThrow(/2 frontier nodes/);
    expect(() => MerkleFrontier.fromJSON({ size: 1, nodes: ['zz'] })).toThrow(RangeError);
    expect(MerkleFrontier.fromJSON({ size: 2 ** 40, nodes: [hex(EMPTY_ROOT)] }).size).toBe(2 ** 40);
  });
});
