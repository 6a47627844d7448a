/**
 * One multiplexed HTTP/2 client session per next-hop address (DESIGN.md §3: "one multiplexed
 * HTTP/2 connection per peer endpoint"). A session that errors, is sent GOAWAY or closes is
 * dropped from the pool; the next request opens a fresh one.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import type { Logger } from '../../lib/log.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';

/** Per-stream and per-connection flow-control windows: large enough for bulk transfers on loopback. */
const STREAM_WINDOW_BYTES = 1 << 20;
const SESSION_WINDOW_BYTES = 8 << 20;

export interface PooledSession {
  readonly session: ClientHttp2Session;
  /** True once the TCP connection is up; errors before that are connect errors. */
  connected: boolean;
}

export class H2Pool {
  readonly #sessions = new Map<string, PooledSession>();
  readonly #connector: Connector;
  readonly #log: Logger;

  constructor(connector: Connector, log: Logger) {
    this.#connector = connector;
    this.#log = log;
  }

  /**
   * The live session to `target`, opening one if needed. Never throws; failures surface on
   * streams. Sessions are pooled per address and expected identity: one verified for an identity
   * never carries requests meant for another.
   */
  get(target: ConnectTarget): PooledSession {
    const key = target.identity ? `${target.addr} ${target.identity}` : target.addr;
    const cur = this.#sessions.get(key);
    if (cur && !cur.session.closed && !cur.session.destroyed) return cur;
    const session = http2.connect(`http://${target.addr}`, {
      createConnection: () => this.#connector.connecting(target),
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: 64,
    });
    const pooled: PooledSession = { session, connected: false };
    const drop = () => {
      if (this.#sessions.get(key) === pooled) this.#sessions.delete(key);
    };
    session.once('connect', () => {
      pooled.connected = true;
      session.setLocalWindowSize(SESSION_WINDOW_BYTES);
    });
    session.on('error', (err) => {
      this.#log.debug('h2 session error', { addr: target.addr, error: err.message });
      drop();
    });
    session.once('goaway', drop);
    session.once('close', drop);
    this.#sessions.set(key, pooled);
    return pooled;
  }

  /** Sends GOAWAY on every session; streams in flight finish. */
  close(): void {
    for (const p of this.#sessions.values()) p.session.close();
    this.#sessions.clear();
  }

  destroy(): void {
    for (const p of this.#sessions.values()) p.session.destroy();
    this.#sessions.clear();
  }
}
