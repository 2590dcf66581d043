/**
 * fetchSnapshots, the collector's one round trip for a batch's job hashes: each job's snapshot is
 * what HMGET of its read level's fields gives (everything, without data, or only the attempt's
 * status), for jobs that are gone too, across queues, in one call for hundreds of jobs.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchSnapshots, snapshotKey, toSnapshot, type SnapshotRequest } from '../../../collectors/bullmq/job-snapshot.js';
import { startRedis, type RedisServer } from '../../harness/index.js';

const FIELDS = ['name', 'opts', 'timestamp', 'delay', 'processedOn', 'finishedOn', 'atm', 'failedReason', 'parentKey', 'data', 'returnvalue'];
const STATUS = ['timestamp', 'processedOn', 'finishedOn', 'atm', 'failedReason'];

let redis: RedisServer;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.dispose();
});

describe('fetchSnapshots', () => {
  it('gives each job what HMGET of its fields gives, across queues and for missing jobs', async () => {
    const n = 437;
    const pipe = client.pipeline();
    const reqs: SnapshotRequest[] = [];
    for (let i = 0; i < n; i++) {
      const queue = i % 3 === 0 ? 'other' : 'q';
      const jobId = String(i);
      if (i % 11 !== 5) { // every 11th job is gone
        const h: Record<string, string> = { name: `job-${i}`, opts: JSON.stringify({ attempts: i % 4, warden: { cid: `c${i}` } }), timestamp: String(1000 + i), atm: String(i % 3) };
        if (i % 2) h.processedOn = String(2000 + i);
        if (i % 4 === 1) { h.finishedOn = String(3000 + i); h.failedReason = `boom "${i}" é`; }
        if (i % 5) h.data = JSON.stringify({ prompt: `p${i}`, nested: { k: [i, null, 'x'] } });
        if (i % 7 === 0) h.returnvalue = '{"ok":true}';
        pipe.hset(`bull:${queue}:${jobId}`, h);
      }
      reqs.push(i % 3 === 1 ? { queue, jobId, withData: false, statusOnly: true } : { queue, jobId, withData: i % 2 === 0 });
    }
    await pipe.exec();

    const got = await fetchSnapshots(client, 'bull', reqs);
    expect(got.size).toBe(n);
    let gone = 0;
    for (const r of reqs) {
      const key = `bull:${r.queue}:${r.jobId}`;
      let values: (string | null)[];
      if (r.statusOnly) {
        const s = await client.hmget(key, ...STATUS);
        values = FIELDS.map((f) => (STATUS.includes(f) ? s[STATUS.indexOf(f)] : null));
      } else {
        values = await client.hmget(key, ...(r.withData ? FIELDS : FIELDS.slice(0, -2)));
      }
      const want = toSnapshot(values);
      if (want === null) gone++;
      expect(got.get(snapshotKey(r.queue, r.jobId)), `${key} (${r.statusOnly ? 'status' : r.withData ? 'with data' : 'without data'})`).toEqual(want);
    }
    expect(gone).toBe(Math.ceil((n - 5) / 11)); // the missing jobs read as gone, not as empty jobs
  });

  it('an empty request list gives an empty map', async () => {
    expect((await fetchSnapshots(client, 'bull', [])).size).toBe(0);
  });
});
