/**
 * The Python worker hook (hooks/celery, package warden-celery) under `npm test`: a pinned venv with
 * the package installed editable with its extras, then its pytest suite (real Redis, NATS JetStream,
 * Temporal dev server and prefork Celery workers, started by the tests themselves). Also holds the
 * Python side to the TypeScript contracts: the vectors its unit tests compare against are recomputed
 * here from core/*.ts, and the `warden` Temporal header a Celery task wrote is decoded by
 * hooks/temporal/headers.ts readStamp.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensurePyVenv, PY_PINS } from '../../harness/index.js';
import { tempDir } from '../../harness/tmp.js';
import { isSensitiveKey, percentDecode, redactEvent, redactJoinKey, Redactor } from '../../../core/redact.js';
import { makeEvent } from '../../../core/event.js';
import { canonicalJson } from '../../../core/canonical.js';
import { stableSpanId, traceIdForCorrelation } from '../../../core/ids.js';
import { breakerKey } from '../../../core/breakers.js';
import { readStamp } from '../../../hooks/temporal/headers.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const pkg = path.join(repo, 'hooks/celery');

/**
 * What hooks/celery/tests/vectors_ts.json must hold: computed from the TypeScript code now. Inputs
 * are stored beside the outputs (`*_in`, pairs) so the Python tests replay every vector.
 * Regenerate: `WARDEN_WRITE_VECTORS=1 npx vitest run test/hooks/celery/python.test.ts -t vectors`.
 */
function tsVectors(): unknown {
  const r = new Redactor({ paths: ['user.ssn_like', 'messages.*.content'], maxDepth: 32 });
  const texts = ['mail bob@example.com now', 'Authorization: Bearer abc.def-ghi', 'key sk-abcdefghijklmnop1234 end', 'password=hunter2; next', 'card 4111 1111 1111 1111 ok', 'card 4111 1111 1111 1112 no', 'AKIAABCDEFGHIJKLMNOP', 'plain text 123', 'token: "xyz"',
    // compound key names in assignments (issue "Trust boundary")
    'x-api-key: zzz999', 'X-Api-Key=zzz999&q=1', 'db_password=hunter2; userPassword: "p4ss" ok', 'AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG', 'aws_secret_access_key=wJalrXUtnFEMI', 'pwd=hunter2', 'DB_PWD=x dbPwd=y', 'session_id=abc123 pin: 1234 ssn=078-05-1120',
    'refreshToken="r-123" x-auth-token: t0k gcp_credentials=c.json', '{"client_secret": "cs999", "api_key":"k1"}', "cookie='a=b'", 'Authorization=Basic dXNlcjpwYXNz',
    // token counts and names of credentials are not secrets
    'prompt_tokens=123 max_tokens: 5 token_count=9 tokenizer=bpe', 'evidence.via_token=ci-bot token_name=ci', 'keyboard=qwerty monkey: 3',
    // idempotent on redacted text
    'password=[REDACTED:secret] token:[REDACTED:secret]"', 'redis://u:[REDACTED:password]@h',
    // percent-decoded matching
    'Authorization: Bearer%20abcDEF1234567890xyz', 'GET /cb?access_token=abc%3D%3D&next=%2Fhome', 'mail%40example.com jane%40corp.example.com', 'bad %E0%A4%A run jane%40corp.example.com %ZZ', '%C3%A9t%C3%A9 100%', 'caf%C3%A9 %F0%9F%98%80 ok',
    // URL userinfo
    'redis://admin:s3cr3tPass@db.internal:6379/0', 'amqp://guest:guest@127.0.0.1:5672//', 'http://ch:9000', 'see https://user@host/x',
    // other patterns
    'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU2p1r', 'gh ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'slack xoxb-1234567890-abc', 'g AIzaSyA1234567890abcdefghijklmnopqrstuv',
    'nbsp\u00a0token:\u00a0abc', 'line\u2028secret=s1\u2028end', 'é bob@example.com 😀 token=x😀y',
    // JavaScript regex semantics: ASCII-only case folding, Unicode \s (not U+0085 / U+001C), `$` = end of input
    'Bearer\u00a0abc123 \u017Fecret=abc to\u212Aen=abc PA\u017F\u017FWORD=x', 'token:\u0085abc token:\u001cabc token:\ufeffabc', 'x\npassword=y\n', 'éBearer abc123 ésk-abcdefghijklmnop1234 card \u0664\u0661\u0661\u0661 4111 1111 1111 1111',
  ];
  const valueIn = {
    user: { ssn_like: 'x', name: 'Ann', password: 'p', api_key: 'k' }, messages: [{ content: 'hi', role: 'u' }], note: 'write to a@b.io', n: [1, 2.5, 1e21, 1e-7, 0.1, -0, 123456789012345680000], 'é': true, b: null,
    cfg: { db_password: 'hunter2', userPassword: 'p', aws_secret_access_key: 'a', 'x-api-key': 'k', pwd: 'w', DB_PWD: 'w', refreshToken: 'r', gcp_credentials: { a: 1 }, Cookie: 'c', pin: 1234 },
    usage: { prompt_tokens: 5, max_tokens: 10, token_count: 3, tokenizer: 'bpe', token_name: 'ci', 'evidence.via_token': 'ci-bot' },
    'mail bob@example.com': 'key as text', 'token=abc': 'x', list: ['password=p', ['Bearer%20abcDEF1234567890xyz', { secret: ['deep'] }]],
  };
  const sensitive = ['db_password', 'userPassword', 'aws_secret_access_key', 'x-api-key', 'pwd', 'DB_PWD', 'dbPwd', 'passwd', 'client_secret', 'refreshToken', 'x-auth-token', 'gcp_credentials',
    'ssh_private_key', 'Authorization', 'proxy-authorization', 'Cookie', 'set-cookie', 'apiKey', 'api_key_v2', 'session_id', 'pin', 'PIN', 'auth', 'ssn', 'card_number', 'passphrase',
    'prompt_tokens', 'completion_tokens', 'max_tokens', 'token_count', 'tokenizer', 'queue', 'model', 'output.score', 'name', 'keyboard', 'evidence.via_token', 'token_name', 'token_type',
    'pin_code', 'spinner', 'pwd\n', 'pass\n', 'upwd', 'my.pwd.x', 'password[REDACTED]', '[REDACTED:email]_token', 'auth_header', 'oauth', 'to\u212Aen', '\u017Fecret', 'pwd.\n'];
  const joinKeys = ['01ARZ3NDEKTSV4RRFFQ69G5FAV', '8c0e4b5e-6a8b-4a57-9d8c-2f4b1a8e9c10', '4111111111111111', 'plain-cid', 'celery:q:jane.doe@example.com', 'corr alice@example.com', 'job token=abc',
    'celery:q:[REDACTED:email]~h:0123456789ab', 'é bob@example.com 😀', 'cid%40x Bearer%20abcDEF1234567890xyz'];
  const eventIn = makeEvent({
    event_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', ts: 1_700_000_000_000, kind: 'job.annotated', source: 'celery', correlation_id: 'corr alice@example.com', trace_id: 'a0023ac8891eab96af4d8976d788ee77',
    span_id: '86e6f1d8bf21f799', queue: 'q mail@example.com', job_id: 'jane.doe@example.com', job_name: 'tasks.call sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX', workflow_id: 'wf-1', run_id: null, attempt: 2,
    duration_ms: 0, input_digest: null, input: { args: ['db_password=hunter2'], kwargs: { api_key: 'k', prompt_tokens: 5 } }, model: 'gpt token=abc', model_version: 'v1', policy: 'p', policy_version: 'v%40x.io',
    actor: 'ceo@example.com', decision: null, reason: 'password=x', error: 'Bearer abc.def.ghi',
    attrs: { note: 'link', userPassword: 'hunter2', 'k-sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX': 1, root_id: 'root bob@example.com', hostname: 'w1@host.example.com', n: 3, ok: true, nul: null, secret: null, pwd: 5, stream_id: '1765043123408-0', card: '1765043123408-0' },
  });
  return JSON.parse(JSON.stringify({
    texts: texts.map((t) => [t, r.redactText(t)]),
    value_in: valueIn,
    value: r.redactValue(valueIn),
    sensitive: sensitive.map((k) => [k, isSensitiveKey(k)]),
    percent: ['a%20b+c', '%E0%A4%A', '%zz%41', '100%', '%C3%A9%ZZ%C3', '%ED%A0%80', '%C0%AF', '%F4%90%80%80 %41', 'a+b%2Bc', '%C3%41', '%E2%82'].map((t) => [t, percentDecode(t), percentDecode(t, true)]),
    join_keys: joinKeys.map((k) => [k, redactJoinKey(k, r)]),
    event_in: eventIn,
    event: redactEvent(eventIn, r),
    canonical: canonicalJson({ b: [1, 2.5, 1e21, 1e-7, 0.1, 1.5e300, 5e-324, 100, -3], a: 'x"\n\u0001é😀', 'é': 1, z: { y: null, x: true } }),
    trace: traceIdForCorrelation('cid-1'), span: stableSpanId('celery', 'task', 'abc', 0),
    keys: [breakerKey({ system: 'celery', kind: 'task', name: 'tasks.add' }), breakerKey({ system: 'celery', kind: 'queue', name: 'a b..c/é😀*' })],
  }));
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('warden_celery (Python)', () => {
  it('its contract vectors are what core/*.ts computes', () => {
    const file = path.join(pkg, 'tests/vectors_ts.json');
    if (process.env.WARDEN_WRITE_VECTORS === '1') fs.writeFileSync(file, `${JSON.stringify(tsVectors(), null, 1)}\n`);
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(stored).toEqual(tsVectors());
  });

  it('passes its pytest suite, and the Temporal header it writes is read by hooks/temporal', async () => {
    const venv = await ensurePyVenv('celery-hook', PY_PINS.celeryHook, [`${pkg}[nats,temporal,test]`]);
    const tmp = await tempDir('celery-py');
    const artifacts = path.join(tmp.path, 'artifacts');
    try {
      const { code, output } = await run(venv.python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'hooks/celery/tests'], {
        ...process.env, WARDEN_TEST_ARTIFACTS: artifacts, PYTHONDONTWRITEBYTECODE: '1',
        WARDEN_NATS_URL: '', WARDEN_INGEST_URL: '', WARDEN_INGEST_TOKEN: '', WARDEN_ENFORCE_BREAKERS: '',
      });
      const summary = output.trim().split('\n').pop() ?? '';
      if (code !== 0 || !/^\d+ passed/.test(summary) || /failed|error/.test(summary)) console.log(output);
      expect(code).toBe(0);
      const passed = Number(/^(\d+) passed/.exec(summary)?.[1] ?? 0);
      expect(passed).toBeGreaterThan(0);
      expect(summary).not.toMatch(/failed|error|skipped/);

      const art = JSON.parse(fs.readFileSync(path.join(artifacts, 'temporal-warden-header.json'), 'utf8'));
      const payload = {
        metadata: Object.fromEntries(Object.entries(art.metadata as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(art.data, 'base64'),
      };
      expect(readStamp({ warden: payload })).toEqual({ cid: art.expect_cid, tp: art.expect_tp });
    } finally {
      await tmp.cleanup();
    }
  }, 20 * 60_000);
});
