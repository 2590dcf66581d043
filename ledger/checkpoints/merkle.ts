/**
 * RFC 6962 Merkle trees (as restated in RFC 9162 §2.1) over the whole ledger: leaf i is the record
 * with seq i + 1, hashed as its canonical line without the newline.
 *
 * - leaf hash `SHA-256(0x00 || leaf bytes)`, node hash `SHA-256(0x01 || left || right)`, the empty
 *   tree's hash is SHA-256 of nothing;
 * - a tree of n > 1 leaves splits at k, the largest power of two below n: MTH(D[n]) =
 *   node(MTH(D[0:k]), MTH(D[k:n])).
 *
 * Every subtree that this recursion (and so every proof) touches starts at a multiple of a power of
 * two at least its size, so its hash folds from the perfect, aligned subtrees ("nodes": level l,
 * index i covers leaves [i·2^l, (i+1)·2^l)) along its set bits. That is what makes three things
 * cheap here:
 * - `MerkleFrontier`: the incremental builder. Its state is the roots of the perfect subtrees the
 *   leaves so far decompose into (one per set bit of the size, O(log n)), serializable and restorable.
 * - `MemoryTree`: all nodes in memory (2n hashes), O(log² n) per proof. For tests and small logs.
 * - `NodeCollector`: proofs from one streaming pass over the leaves, keeping only the nodes the
 *   requested proofs need. The ledger uses this: a proof over millions of records needs O(log n) memory.
 *
 * Sizes and indexes are JS numbers (exact up to 2^53); no 32-bit bit operators are used on them.
 */
import { sha256Bytes as sha256 } from '../../core/hash.js';

export const HASH_BYTES = 32;

/** MTH of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = sha256(Buffer.alloc(0));

const LEAF_PREFIX = Buffer.from([0]);

/** Reused: 0x00 and a leaf's bytes, hashed at once (a concat per leaf was one more copy of every record). */
let leafScratch = Buffer.alloc(4096);
const MAX_KEPT_LEAF_SCRATCH = 1 << 20;

/** `SHA-256(0x00 || data)`; a string is hashed as its UTF-8 bytes. */
export function leafHash(data: Uint8Array | string): Buffer {
  // "\u0000" encodes to the single byte 0x00, so a string leaf needs no Buffer round trip.
  if (typeof data === 'string') return sha256(`\u0000${data}`);
  const n = data.length + 1;
  if (n > MAX_KEPT_LEAF_SCRATCH) return sha256(Buffer.concat([LEAF_PREFIX, data])); // rare: not kept
  if (leafScratch.length < n) leafScratch = Buffer.alloc(Math.max(n, leafScratch.length * 2));
  leafScratch[0] = 0;
  leafScratch.set(data, 1);
  return sha256(leafScratch.subarray(0, n));
}

const nodeBuf = Buffer.alloc(1 + 2 * HASH_BYTES);
nodeBuf[0] = 1;

/** `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_BYTES || right.length !== HASH_BYTES) throw new RangeError('nodeHash: children must be 32-byte hashes');
  nodeBuf.set(left, 1);
  nodeBuf.set(right, 1 + HASH_BYTES);
  return sha256(nodeBuf);
}

/** The largest power of two strictly below n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function isPowerOfTwo(n: number): boolean {
  let x = n;
  while (x > 1 && x % 2 === 0) x /= 2;
  return x === 1;
}

function popcount(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) c += x % 2;
  return c;
}

/** A half-open range of leaf indexes [lo, hi): one subtree of the RFC recursion. */
export interface LeafRange {
  lo: number;
  hi: number;
}

/** A perfect, aligned subtree: leaves [index·2^level, (index+1)·2^level). */
export interface NodeId {
  level: number;
  index: number;
}

/**
 * The perfect aligned subtrees a range of the RFC recursion decomposes into, left to right
 * (largest first). Its MTH is their right fold: node(n0, node(n1, ... node(n_{k-1}, n_k))).
 */
export function rangeNodes(r: LeafRange): NodeId[] {
  const size = r.hi - r.lo;
  if (!(isSize(r.lo) && isSize(r.hi) && size > 0)) throw new RangeError(`not a non-empty leaf range: [${r.lo}, ${r.hi})`);
  let p = 1;
  while (p * 2 <= size) p *= 2;
  const out: NodeId[] = [];
  let pos = r.lo;
  let left = size;
  for (let level = Math.log2(p); left > 0; p /= 2, level--) {
    if (left < p) continue;
    if (pos % p !== 0) throw new RangeError(`[${r.lo}, ${r.hi}) is not a subtree of an RFC 6962 tree`);
    out.push({ level, index: pos / p });
    pos += p;
    left -= p;
  }
  return out;
}

/** Folds the hashes of a range's nodes (from rangeNodes, in order) into the range's MTH. */
export function foldNodes(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return EMPTY_ROOT;
  let r = hashes[hashes.length - 1];
  for (let i = hashes.length - 2; i >= 0; i--) r = nodeHash(hashes[i], r);
  return r;
}

/**
 * The subtrees whose hashes form the inclusion proof (audit path) of leaf `index` in a tree of
 * `size` leaves, in proof order (RFC 6962 §2.1.1 PATH: nearest the leaf first).
 */
export function inclusionRanges(index: number, size: number): LeafRange[] {
  if (!(isSize(index) && isSize(size) && index < size)) throw new RangeError(`no leaf ${index} in a tree of size ${size}`);
  const out: LeafRange[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      out.push({ lo: lo + k, hi });
      hi = lo + k;
    } else {
      out.push({ lo, hi: lo + k });
      lo += k;
    }
  }
  return out.reverse();
}

/**
 * The subtrees whose hashes form the consistency proof from size m to size n (RFC 6962 §2.1.2
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true)), in proof order. Empty when m = n or m = 0.
 */
export function consistencyRanges(m: number, n: number): LeafRange[] {
  if (!(isSize(m) && isSize(n) && m <= n)) throw new RangeError(`no consistency proof from size ${m} to size ${n}`);
  if (m === 0 || m === n) return [];
  const upper: LeafRange[] = [];
  let lo = 0;
  let hi = n;
  let rest = m; // the old tree's leaves that fall in [lo, hi)
  let whole = true; // "b" in the RFC: still on the old tree's own root path
  while (rest !== hi - lo) {
    const k = splitPoint(hi - lo);
    if (rest <= k) {
      upper.push({ lo: lo + k, hi });
      hi = lo + k;
    } else {
      upper.push({ lo, hi: lo + k });
      lo += k;
      rest -= k;
      whole = false;
    }
  }
  const out = whole ? [] : [{ lo, hi }];
  return out.concat(upper.reverse());
}

/** Incremental RFC 6962 tree head: O(log n) state, O(1) amortized hashing per leaf. */
export class MerkleFrontier {
  private n: number;
  /** Roots of the perfect subtrees covering [0, n), largest (leftmost) first. */
  private readonly nodes: Buffer[];

  constructor(size = 0, nodes: readonly Buffer[] = []) {
    if (!isSize(size)) throw new RangeError(`MerkleFrontier: bad size ${size}`);
    if (nodes.length !== popcount(size)) {
      throw new RangeError(`MerkleFrontier: a tree of size ${size} has ${popcount(size)} frontier nodes, got ${nodes.length}`);
    }
    for (const h of nodes) if (h.length !== HASH_BYTES) throw new RangeError('MerkleFrontier: nodes must be 32-byte hashes');
    this.n = size;
    this.nodes = nodes.map((h) => Buffer.from(h));
  }

  get size(): number {
    return this.n;
  }

  /**
   * Adds the next leaf. `onNode` sees every perfect subtree completed by it (the leaf itself at
   * level 0, then each merge), which is how NodeCollector gathers proof material.
   */
  append(leaf: Buffer, onNode?: (level: number, index: number, hash: Buffer) => void): void {
    if (leaf.length !== HASH_BYTES) throw new RangeError('MerkleFrontier.append: a leaf hash is 32 bytes');
    let node = leaf;
    let index = this.n;
    let level = 0;
    onNode?.(level, index, node);
    while (index % 2 === 1) {
      node = nodeHash(this.nodes.pop()!, node);
      index = (index - 1) / 2;
      level++;
      onNode?.(level, index, node);
    }
    this.nodes.push(node);
    this.n++;
  }

  root(): Buffer {
    return foldNodes(this.nodes);
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(this.n, this.nodes);
  }

  toJSON(): SerializedFrontier {
    return { size: this.n, nodes: this.nodes.map((h) => h.toString('hex')) };
  }

  static fromJSON(v: unknown): MerkleFrontier {
    const o = v as SerializedFrontier;
    if (typeof o !== 'object' || o === null || !Array.isArray(o.nodes) || !o.nodes.every((h) => typeof h === 'string' && HEX64.test(h))) {
      throw new RangeError('not a serialized MerkleFrontier ({size, nodes: [hex]})');
    }
    return new MerkleFrontier(o.size, o.nodes.map((h) => Buffer.from(h, 'hex')));
  }
}

export interface SerializedFrontier {
  size: number;
  nodes: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

/** MTH of a list of leaf hashes. */
export function rootOf(leafHashes: readonly Buffer[]): Buffer {
  const f = new MerkleFrontier();
  for (const h of leafHashes) f.append(h);
  return f.root();
}

/** Every node of a tree in memory: for tests, and for logs small enough to hold (64 bytes a leaf). */
export class MemoryTree {
  /** levels[l][i] = node (l, i). */
  private readonly levels: Buffer[][];

  constructor(leafHashes: readonly Buffer[]) {
    this.levels = [leafHashes.slice()];
    for (let l = 0; this.levels[l].length > 1; l++) {
      const below = this.levels[l];
      const up: Buffer[] = [];
      for (let i = 0; i + 1 < below.length; i += 2) up.push(nodeHash(below[i], below[i + 1]));
      this.levels.push(up);
    }
  }

  get size(): number {
    return this.levels[0].length;
  }

  /** MTH of the first `size` leaves (default: all). */
  root(size = this.size): Buffer {
    this.checkSize(size);
    return size === 0 ? EMPTY_ROOT : this.rangeHash({ lo: 0, hi: size });
  }

  /** Hashes of ranges that are not perfect subtrees (the right edges of trees), computed once. */
  private readonly ragged = new Map<string, Buffer>();

  rangeHash(r: LeafRange): Buffer {
    const nodes = rangeNodes(r);
    if (nodes.length === 1) return this.levels[nodes[0].level][nodes[0].index];
    const key = `${r.lo}:${r.hi}`;
    let h = this.ragged.get(key);
    if (!h) {
      h = foldNodes(nodes.map((n) => this.levels[n.level][n.index]));
      this.ragged.set(key, h);
    }
    return h;
  }

  inclusionProof(index: number, size = this.size): Buffer[] {
    this.checkSize(size);
    return inclusionRanges(index, size).map((r) => this.rangeHash(r));
  }

  consistencyProof(m: number, n = this.size): Buffer[] {
    this.checkSize(n);
    return consistencyRanges(m, n).map((r) => this.rangeHash(r));
  }

  private checkSize(size: number): void {
    if (!(isSize(size) && size <= this.size)) throw new RangeError(`tree has ${this.size} leaves, not ${size}`);
  }
}

/**
 * Gathers, in one pass over the leaves, the hashes of the ranges it was asked for, keeping only
 * the nodes those ranges need. Feed it every leaf from index 0 (push), then ask (rangeHash).
 */
export class NodeCollector {
  readonly frontier = new MerkleFrontier();
  private readonly wanted = new Map<string, Buffer | null>();
  private readonly capture = (level: number, index: number, hash: Buffer) => {
    const key = `${level}:${index}`;
    if (this.wanted.has(key)) this.wanted.set(key, hash);
  };

  constructor(ranges: Iterable<LeafRange> = []) {
    for (const r of ranges) this.want(r);
  }

  want(r: LeafRange): void {
    for (const n of rangeNodes(r)) {
      const key = `${n.level}:${n.index}`;
      if (!this.wanted.has(key)) this.wanted.set(key, null);
    }
  }

  push(leaf: Buffer): void {
    this.frontier.append(leaf, this.wanted.size > 0 ? this.capture : undefined);
  }

  get size(): number {
    return this.frontier.size;
  }

  /** The MTH of a requested range whose leaves have all been pushed. */
  rangeHash(r: LeafRange): Buffer {
    return foldNodes(rangeNodes(r).map((n) => {
      const h = this.wanted.get(`${n.level}:${n.index}`);
      if (!h) throw new RangeError(`leaves [${r.lo}, ${r.hi}) were not requested or not all pushed (have ${this.size})`);
      return h;
    }));
  }

  inclusionProof(index: number, size: number): Buffer[] {
    return inclusionRanges(index, size).map((r) => this.rangeHash(r));
  }

  consistencyProof(m: number, n: number): Buffer[] {
    return consistencyRanges(m, n).map((r) => this.rangeHash(r));
  }
}

function isHash(h: unknown): h is Buffer {
  return Buffer.isBuffer(h) && h.length === HASH_BYTES;
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or null when the proof cannot be for
 * leaf `index` of a tree of `size` (wrong length, index out of range).
 */
export function rootFromInclusionProof(leaf: Buffer, index: number, size: number, proof: readonly Buffer[]): Buffer | null {
  if (!(isSize(index) && isSize(size) && index < size && isHash(leaf) && proof.every(isHash))) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** Does `proof` show that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`? */
export function verifyInclusion(leaf: Buffer, index: number, size: number, proof: readonly Buffer[], root: Buffer): boolean {
  const r = rootFromInclusionProof(leaf, index, size, proof);
  return r !== null && isHash(root) && r.equals(root);
}

/**
 * Does `proof` show that the tree of size m with root `rootM` is a prefix of the tree of size n with
 * root `rootN` (RFC 9162 §2.1.4.2)? Size 0 is a prefix of anything (empty proof); equal sizes need
 * equal roots and an empty proof.
 */
export function verifyConsistency(m: number, n: number, rootM: Buffer, rootN: Buffer, proof: readonly Buffer[]): boolean {
  if (!(isSize(m) && isSize(n) && m <= n && isHash(rootM) && isHash(rootN) && proof.every(isHash))) return false;
  if (m === 0) return proof.length === 0 && rootM.equals(EMPTY_ROOT);
  if (m === n) return proof.length === 0 && rootM.equals(rootN);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(m) ? [rootM, ...proof] : proof;
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (let i = 1; i < path.length; i++) {
    const c = path[i];
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(rootM) && sr.equals(rootN);
}
