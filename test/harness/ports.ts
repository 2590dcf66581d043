import net from 'node:net';

// Ports this process already handed out: the OS may return a port again once our probe socket
// closes, and two servers asked for ports back to back must not end up fighting over one.
const handedOut = new Set<number>();

function bindZero(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * A loopback TCP port that was free a moment ago and that this process has not handed out before.
 * Ephemeral ports (32768+) never collide with the machine's own Redis (6379) or NATS (4222).
 * There is still a window between close and the server's bind; the start* helpers retry on
 * "address in use".
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await bindZero();
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused loopback port after 100 tries');
}
