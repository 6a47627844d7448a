/**
 * One process of simulated proxies for bench/control-fanout.ts, started with `fork()`: it opens
 * one Destination Get stream per authority it is given, each on its own connection (like separate
 * proxies), and reports over IPC when every stream has its initial state and when each stream
 * first sees an address of interest. Times are `performance.timeOrigin + performance.now()`,
 * comparable between processes on one host. It exits when its parent goes away.
 */
import * as grpc from '@grpc/grpc-js';
import { type DestinationClient, destinationApi, type Update } from '../proto/destination.js';

/** What the parent sends, once. */
export interface SubscribeRequest {
  readonly type: 'subscribe';
  /** `host:port` of the Destination service. */
  readonly destination: string;
  /** One stream per entry. */
  readonly authorities: readonly string[];
  /** Only addresses starting with this are reported as `seen` (the benchmark's changes). */
  readonly watchPrefix: string;
  /**
   * Streams opened but without their initial state yet, at most: thousands of connections opened
   * in the same instant overflow the server's listen backlog (ECONNRESET), which real proxies,
   * starting over time, do not do.
   */
  readonly maxConnecting: number;
}

/** What this process sends back. */
export type SubscriberReport =
  /** Every stream has received its first update (the initial state). */
  | { readonly type: 'ready'; readonly streams: number; readonly atMs: number }
  /** Streams that first saw `addr` at these times (one entry per stream). */
  | { readonly type: 'seen'; readonly addr: string; readonly atMs: readonly number[] }
  /** A stream ended with an error (counted; the benchmark reports them). */
  | { readonly type: 'stream-error'; readonly authority: string; readonly message: string };

/** The shared clock of the benchmark's processes, in ms since the epoch with sub-ms resolution. */
export const sharedNowMs = (): number => performance.timeOrigin + performance.now();

/** How long `seen` reports wait to be sent together. */
const REPORT_BATCH_MS = 50;

const clients: DestinationClient[] = [];

function send(report: SubscriberReport): void {
  process.send?.(report);
}

function subscribeAll(req: SubscribeRequest): void {
  const Client = destinationApi().Client;
  let waiting = req.authorities.length;
  // Reports are batched per address over REPORT_BATCH_MS: a proxy sends nothing per update, so
  // the benchmark must not add an IPC write (a syscall plus JSON) per received message to the
  // CPU the other subscribers and the control plane are competing for. The times are taken on
  // receipt, so the delay does not enter the measured latency.
  let pending = new Map<string, number[]>();
  const flush = () => {
    for (const [addr, atMs] of pending) send({ type: 'seen', addr, atMs });
    pending = new Map();
  };
  let next = 0;
  const openNext = () => {
    if (next < req.authorities.length) open(req.authorities[next++]);
  };
  const open = (authority: string) => {
    const client = new Client(req.destination, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    clients.push(client);
    const seen = new Set<string>();
    let first = true;
    const call = client.Get({ authority, contextToken: '' });
    call.on('data', (u: Update) => {
      const atMs = sharedNowMs();
      if (u.update === 'add') {
        for (const { addr } of u.add.addrs) {
          if (!addr.startsWith(req.watchPrefix) || seen.has(addr)) continue;
          seen.add(addr);
          if (pending.size === 0) setTimeout(flush, REPORT_BATCH_MS);
          const list = pending.get(addr) ?? [];
          list.push(atMs);
          pending.set(addr, list);
        }
      }
      if (first) {
        first = false;
        if (--waiting === 0) send({ type: 'ready', streams: req.authorities.length, atMs });
        openNext();
      }
    });
    call.on('error', (err: Error) => send({ type: 'stream-error', authority, message: err.message }));
  };
  for (let i = 0; i < req.maxConnecting; i++) openNext();
}

process.on('message', (msg: SubscribeRequest) => {
  if (msg.type === 'subscribe') subscribeAll(msg);
});
// The parent exiting (or being killed) closes the IPC channel: nothing must outlive it.
process.on('disconnect', () => {
  for (const c of clients) c.close();
  process.exit(0);
});
