import net from 'node:net';

/**
 * Connects to 127.0.0.1:port, optionally writes `send`, and resolves with what arrived once
 * `done(received)` says so. Rejects on connection error or timeout. Raw sockets keep the harness free
 * of client libraries (the NATS client is not a dependency yet).
 */
export function tcpExchange(
  port: number,
  send: string | undefined,
  done: (received: string) => boolean,
  timeoutMs = 2_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const sock = net.connect({ host: '127.0.0.1', port });
    const finish = (err?: Error): void => {
      sock.destroy();
      if (err) reject(err);
      else resolve(received);
    };
    sock.setTimeout(timeoutMs, () => finish(new Error(`no answer from 127.0.0.1:${port} within ${timeoutMs} ms`)));
    sock.once('error', (err) => finish(err));
    sock.once('connect', () => {
      if (send !== undefined) sock.write(send);
    });
    sock.on('data', (d) => {
      received += d.toString('utf8');
      if (done(received)) finish();
    });
    sock.once('end', () => finish(done(received) ? undefined : new Error(`connection to 127.0.0.1:${port} closed early`)));
  });
}

/** GET `url`; resolves with status and body, rejects on connection error or timeout. */
export async function httpGet(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}
