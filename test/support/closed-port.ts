/** A loopback port nothing listens on, and nothing will, for tests of refused connections. */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** The kernel's ephemeral range (listen(0) and every connect() take their ports from it). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 4096 ? low : 32768;
  } catch {
    return 32768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * A port on 127.0.0.1 with no listener, below the ephemeral range. A port that listen(0) just
 * handed out and was released is not enough: under a busy parallel suite another listen(0) can be
 * given it, or a connect() to it can be given it as its own source port and connect to itself
 * (TCP simultaneous open), and the "refused" connection then reaches something (one CI run saw
 * gRPC calls to such a port fail as peer errors). Below the range only a fixed-port bind can take it.
 */
export async function closedPort(): Promise<number> {
  const high = ephemeralLow();
  const low = Math.max(1024, high - 10_000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${low}-${high - 1} after 100 tries`);
}
