/** Binding a server and reading back the address it got. */
import type net from 'node:net';
import { formatHostPort, type HostPort } from './addr.js';

/**
 * Binds `server` (net, http, or http2) at `at`; resolves with the bound `host:port` (the real
 * port when 0 was asked for), rejects with the bind error. Leaves no listener behind either way.
 */
export function listenOn(server: net.Server, at: HostPort): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.removeListener('error', reject);
      const a = server.address() as net.AddressInfo;
      resolve(formatHostPort({ host: a.address, port: a.port }));
    });
  });
}
