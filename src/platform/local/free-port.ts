/** Free TCP ports on this host, for programs that must be told their port before they bind it. */
import net from 'node:net';

/**
 * A port that was free on `host` a moment ago: bound on port 0, read, released. Another process
 * may take it before the caller binds it; the OS hands out ephemeral ports in turn, so two
 * replicas started together get different ones.
 */
export function pickFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
