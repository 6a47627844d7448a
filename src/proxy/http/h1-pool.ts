/**
 * The keep-alive connection pool of the HTTP/1.1 client (upstream-h1.ts): what node:http's Agent
 * does for us, minus its per-request costs (two option-object copies, a server-name lookup, the
 * pool key rebuilt three times, an event re-emitted through the Agent, a linear search on every
 * release). ClientRequest accepts any object with `addRequest(req, options)` as its agent, and
 * reads only `keepAlive`, `maxSockets`, `protocol`, `defaultPort` and `options` from it; the
 * sockets report back with the events ClientRequest emits on them: 'free' when a response ended
 * and the connection stays open, 'agentRemove' when an upgrade takes the connection over.
 *
 * Semantics kept from the Agent: one pool per origin (address, and the identity the mesh
 * connector verifies, so a connection verified for one identity never serves another), at most
 * `maxSockets` connections per origin with further requests queued in order, idle connections
 * reused last-in first-out, at most `maxIdle` of them kept, unreferenced while idle (an idle
 * pool never holds the process), dropped on error, and dropped before the server's announced
 * `Keep-Alive: timeout=N` runs out (a second early, as Node does).
 */
import type http from 'node:http';
import type net from 'node:net';
import type { ConnectTarget } from '../tcp/connect.js';

/** The request options upstream-h1.ts passes to http.request: where to, as one origin. */
export interface PoolRequestOptions {
  /** Origin key: `addr`, plus the identity when the connection is mesh mTLS. */
  readonly weftOrigin: string;
  readonly weftTarget: ConnectTarget;
}

/** The origin key of `target`: a connection verified for one identity never serves another. */
export function originKey(target: ConnectTarget): string {
  return target.identity ? `${target.addr}|${target.identity}` : target.addr;
}

interface Origin {
  readonly key: string;
  readonly target: ConnectTarget;
  /** Idle connections; the last one released is reused first. */
  readonly idle: PooledSocket[];
  /** Requests waiting for a connection, in arrival order. */
  readonly waiting: http.ClientRequest[];
  /** Open connections (connecting, busy or idle). */
  size: number;
}

interface PooledSocket extends net.Socket {
  [kOrigin]?: Origin;
  [kPool]?: H1Pool;
  _httpMessage?: http.ClientRequest | null;
}

const kOrigin = Symbol('weft.h1pool.origin');
const kPool = Symbol('weft.h1pool.pool');
/** Node lets an idle connection expire a second before the server's announced keep-alive timeout. */
const KEEP_ALIVE_HINT_MARGIN_MS = 1000;
const TCP_KEEPALIVE_DELAY_MS = 1000;

export class H1Pool {
  // What ClientRequest reads from its agent.
  readonly keepAlive = true;
  readonly protocol = 'http:';
  readonly defaultPort = 80;
  readonly options: { timeout?: number } = {};
  readonly maxSockets: number;
  readonly #maxIdle: number;
  readonly #connect: (target: ConnectTarget) => net.Socket;
  readonly #origins = new Map<string, Origin>();
  readonly #sockets = new Set<PooledSocket>();
  #destroyed = false;

  constructor(connect: (target: ConnectTarget) => net.Socket, maxSockets: number, maxIdle: number) {
    this.#connect = connect;
    this.maxSockets = maxSockets;
    this.#maxIdle = maxIdle;
  }

  /** Called by ClientRequest (as an Agent): gives `req` a connection now or when one frees up. */
  addRequest(req: http.ClientRequest, options: PoolRequestOptions): void {
    if (this.#destroyed) {
      failWithoutSocket(req, new Error('the connection pool is closed'));
      return;
    }
    let origin = this.#origins.get(options.weftOrigin);
    if (!origin) {
      origin = { key: options.weftOrigin, target: options.weftTarget, idle: [], waiting: [], size: 0 };
      this.#origins.set(origin.key, origin);
    }
    let socket = origin.idle.pop();
    while (socket?.destroyed) socket = origin.idle.pop();
    if (socket) {
      socket.removeListener('error', onIdleError);
      socket.ref();
      req.reusedSocket = true;
      req.onSocket(socket);
    } else if (origin.size < this.maxSockets) {
      req.onSocket(this.#open(origin));
    } else {
      origin.waiting.push(req);
    }
  }

  /** A connection made the pool's way (connect timeout, mTLS), outside the pool. */
  connectOutside(target: ConnectTarget): net.Socket {
    return this.#connect(target);
  }

  /**
   * Takes `req`, which its client gave up on, out of the queue of `origin` (an originKey): it
   * ends with 'error' and 'close' at once instead of waiting for a connection it no longer
   * wants, holding its place and its balancer count meanwhile. False when `req` is not queued
   * (it has a connection, or is about to be given one): the caller destroys it the usual way.
   */
  cancelQueued(origin: string, req: http.ClientRequest): boolean {
    const waiting = this.#origins.get(origin)?.waiting;
    const i = waiting ? waiting.indexOf(req) : -1;
    if (i < 0) return false;
    waiting!.splice(i, 1);
    failWithoutSocket(req);
    return true;
  }

  /**
   * Closes every connection, idle or busy, and fails the queued requests and any later one
   * (proxy shutdown): a connection closing here must not open another for a queued request.
   */
  destroy(): void {
    this.#destroyed = true;
    for (const origin of this.#origins.values()) {
      for (const req of origin.waiting.splice(0))
        failWithoutSocket(req, new Error('the connection pool is closed'));
    }
    for (const s of this.#sockets) s.destroy();
  }

  #open(origin: Origin): PooledSocket {
    const socket: PooledSocket = this.#connect(origin.target);
    socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    socket[kOrigin] = origin;
    socket[kPool] = this;
    origin.size++;
    this.#sockets.add(socket);
    socket.on('free', onFree);
    socket.on('close', onClose);
    socket.on('agentRemove', onRemove);
    socket.on('timeout', onTimeout);
    return socket;
  }

  /** 'free': the response ended and the connection may serve another request. */
  released(socket: PooledSocket): void {
    const origin = socket[kOrigin]!;
    if (!socket.writable) return void socket.destroy();
    const next = origin.waiting.shift();
    if (next) return void next.onSocket(socket);
    const req = socket._httpMessage;
    if (!req?.shouldKeepAlive || origin.idle.length >= this.#maxIdle || !keepSocketAlive(socket, req)) {
      socket.destroy();
      return;
    }
    socket._httpMessage = null;
    socket.once('error', onIdleError);
    origin.idle.push(socket);
  }

  /** 'close' or 'agentRemove': the connection left the pool; a waiting request gets a new one. */
  left(socket: PooledSocket): void {
    const origin = socket[kOrigin]!;
    if (!this.#sockets.delete(socket)) return;
    origin.size--;
    const i = origin.idle.indexOf(socket);
    if (i >= 0) origin.idle.splice(i, 1);
    const next = this.#destroyed ? undefined : origin.waiting.shift();
    if (next) next.onSocket(this.#open(origin));
    else if (origin.size === 0 && this.#origins.get(origin.key) === origin) this.#origins.delete(origin.key);
  }

  /** 'timeout': an idle connection past the server's keep-alive timeout is closed. */
  timedOut(socket: PooledSocket): void {
    if (socket[kOrigin]!.idle.includes(socket)) socket.destroy();
  }
}

/**
 * Ends a request that never got a connection: destroyed, it then learns it has no socket, and
 * ClientRequest emits 'error' (`err`, or "socket hang up") and 'close', as for any failed request.
 */
function failWithoutSocket(req: http.ClientRequest, err?: Error): void {
  req.destroy(err);
  req.onSocket(null as unknown as net.Socket);
}

// Listeners shared by every pooled socket (`this` is the socket): no closures per connection.
function onFree(this: PooledSocket): void {
  this[kPool]!.released(this);
}
function onClose(this: PooledSocket): void {
  this[kPool]!.left(this);
}
function onRemove(this: PooledSocket): void {
  this.removeListener('free', onFree);
  this.removeListener('close', onClose);
  this.removeListener('agentRemove', onRemove);
  this.removeListener('timeout', onTimeout);
  this[kPool]!.left(this);
}
function onTimeout(this: PooledSocket): void {
  this[kPool]!.timedOut(this);
}
function onIdleError(this: PooledSocket): void {
  this.destroy();
}

/**
 * Idles `socket` as Node's Agent does: unreferenced, with the server's `Keep-Alive: timeout=N`
 * (less a second) as its idle timeout. False when that leaves no time to reuse it.
 */
function keepSocketAlive(socket: PooledSocket, req: http.ClientRequest): boolean {
  socket.unref();
  let idleMs = 0;
  const hint = (req as { res?: http.IncomingMessage }).res?.headers['keep-alive'];
  if (typeof hint === 'string') {
    const seconds = /^timeout=(\d+)/.exec(hint)?.[1];
    if (seconds) {
      idleMs = Number.parseInt(seconds, 10) * 1000 - KEEP_ALIVE_HINT_MARGIN_MS;
      if (idleMs <= 0) return false;
    }
  }
  if (socket.timeout !== idleMs) socket.setTimeout(idleMs);
  return true;
}
