/**
 * Signed checkpoints published to a real nats-server's JetStream: each arrives once with a signature
 * that verifies; through an outage (with the in-memory queue overflowing) the ledger never waits, and
 * when NATS returns the missing ones are published from checkpoints.jsonl with nothing duplicated.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Checkpointer, Spool, checkpointSignatureProblem, loadOrCreateSigningKey, type Checkpoint } from '../../ledger/index.js';
import { CHECKPOINT_STREAM, CheckpointPublisher } from '../../agent/publish-checkpoints.js';
import { startNats, tempDir, until, type NatsServer, type TempDir } from '../harness/index.js';
import { events } from '../harness/ledger.js';

const SUBJECT = 'warden.ledger.checkpoints';
let nats: NatsServer;
let dir: TempDir;
beforeAll(async () => {
  [nats, dir] = await Promise.all([startNats(), tempDir('warden-nats-cp')]);
});
afterAll(async () => {
  await nats?.dispose();
  await dir?.cleanup();
});


/** Everything in the stream, read by a fresh JetStream (ordered) consumer. */
async function streamContents(): Promise<{ cp: Checkpoint; msgId: string | undefined }[]> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    const n = (await jsm.streams.info(CHECKPOINT_STREAM)).state.messages;
    if (n === 0) return [];
    const consumer = await jetstream(nc).consumers.get(CHECKPOINT_STREAM);
    const out: { cp: Checkpoint; msgId: string | undefined }[] = [];
    const iter = await consumer.fetch({ max_messages: n, expires: 3000 });
    for await (const m of iter) {
      out.push({ cp: m.json<Checkpoint>(), msgId: m.headers?.get('Nats-Msg-Id') });
      if (out.length === n) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe('publishing checkpoints to NATS JetStream', () => {
  it('publishes each checkpoint once, survives an outage without blocking the ledger, catches up from the file', async () => {
    const key = await loadOrCreateSigningKey(dir.path);
    const publicKey = crypto.createPublicKey(key.privateKey);
    const spool = await Spool.open({ dir: dir.path, fsync: false, groupCommitMs: 0 });
    const cpr = await Checkpointer.open({ dir: dir.path, key, every: 1_000_000, intervalMs: 1_000_000, fsync: false, lastSeq: 0 });
    const errors: string[] = [];
    const pub = new CheckpointPublisher({
      url: nats.url, subject: SUBJECT, dataDir: dir.path, maxQueue: 3, minBackoffMs: 50, maxBackoffMs: 300, timeoutMs: 1000,
      onError: (where) => errors.push(where),
    });
    pub.attach(cpr);
    const produce = async (n: number) => {
      const sizes: number[] = [];
      for (let i = 0; i < n; i++) {
        cpr.add(await spool.append(events(2)));
        const t0 = Date.now();
        const cp = await cpr.checkpoint();
        expect(Date.now() - t0).toBeLessThan(500); // never waits for NATS
        sizes.push(cp!.size);
      }
      return sizes;
    };

    const first = await produce(3);
    expect(first).toEqual([2, 4, 6]);
    await until(() => pub.status().lastAckedSize === 6, 10_000, 'the first checkpoints acked');
    let got = await streamContents();
    expect(got.map((g) => g.cp.size)).toEqual(first);
    for (const g of got) {
      expect(checkpointSignatureProblem(g.cp, publicKey)).toBeNull();
      expect(g.msgId).toBe(`${key.keyId}:${g.cp.size}`);
    }

    // Outage: 5 more checkpoints, more than the queue holds (3): the oldest are dropped, counted.
    await nats.stop();
    const during = await produce(5);
    await until(() => pub.status().failing !== null, 10_000, 'the publisher to notice the outage');
    expect(pub.status().dropped).toBe(2);
    expect(errors.filter((e) => e === 'dropped')).toHaveLength(2);

    await nats.start();
    const all = [...first, ...during];
    await until(() => pub.status().lastAckedSize === all[all.length - 1] && pub.status().queued === 0, 15_000, 'catch-up after the outage');
    got = await streamContents();
    expect(got.map((g) => g.cp.size)).toEqual(all); // the missing ones arrived, in order, none twice
    for (const g of got) expect(checkpointSignatureProblem(g.cp, publicKey)).toBeNull();
    expect(pub.status().failing).toBeNull();

    // A restarted agent (fresh publisher, nothing acked in memory) republishes nothing already there.
    await pub.stop();
    const again = new CheckpointPublisher({ url: nats.url, subject: SUBJECT, dataDir: dir.path, timeoutMs: 1000 });
    again.start();
    again.enqueue(got[0].cp);
    again.enqueue(got[got.length - 1].cp);
    await until(() => again.status().queued === 0 && again.status().lastAckedSize === all[all.length - 1], 10_000, 'the restarted publisher to sync');
    expect(again.status().published).toBe(0);
    // ... and a final checkpoint at stop is drained before the connection closes.
    again.attach(cpr);
    await spool.append(events(1)).then((r) => cpr.add(r));
    await spool.close();
    const last = await cpr.close({ lastSeq: spool.lastSeq });
    await again.stop({ drainMs: 3000 });
    got = await streamContents();
    expect(got.map((g) => g.cp.size)).toEqual([...all, last!.size]);
    expect(new Set(got.map((g) => g.msgId)).size).toBe(got.length);
  }, 20_000);
});
