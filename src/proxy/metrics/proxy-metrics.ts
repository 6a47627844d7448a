/**
 * The proxy's metric families, with Linkerd-compatible names and labels (DESIGN.md §9), and
 * per-target series handles that the hot path holds on to, so recording a request costs a few
 * map lookups at most.
 */
import {
  type Counter,
  type Gauge,
  type Histogram,
  LATENCY_BUCKETS_MS,
  type Labels,
  Registry,
} from '../../lib/metrics/registry.js';

export type Direction = 'inbound' | 'outbound';

/** Everything recorded about a request to one target. */
export interface HttpSeries {
  readonly request: Counter;
  /** The response record for a status/grpc-status/error; call `observe(latencyMs)` once per response. */
  response(
    status: number,
    grpcStatus: string | undefined,
    error: string | undefined,
  ): { observe(latencyMs: number): void };
}

/** Everything recorded about connections of one kind. */
export interface TcpSeries {
  /** Counts an accepted/opened connection; returns the function to call once when it closes. */
  open(): (readBytes: number, writeBytes: number, errno: string | undefined) => void;
}

/** Bound on cached series handles; past it the cache starts over (the registry bounds series). */
const MAX_CACHED = 5000;

export class ProxyMetrics {
  readonly registry: Registry;
  readonly #requests;
  readonly #responses;
  readonly #latency;
  readonly #tcpOpen;
  readonly #tcpClose;
  readonly #tcpOpenConns;
  readonly #tcpRead;
  readonly #tcpWrite;
  readonly #detect;
  readonly #refused;
  readonly #retries;
  readonly #identityExpiration;
  readonly #identityRefresh;
  readonly #httpCache = new Map<string, HttpSeries>();
  readonly #tcpCache = new Map<string, TcpSeries>();

  constructor(registry = new Registry()) {
    this.registry = registry;
    const r = registry;
    this.#requests = r.counter('request_total', 'Total count of HTTP requests.');
    this.#responses = r.counter('response_total', 'Total count of HTTP responses.');
    this.#latency = r.histogram(
      'response_latency_ms',
      "Elapsed times between a request's headers being received and its response stream completing",
      LATENCY_BUCKETS_MS,
    );
    this.#tcpOpen = r.counter('tcp_open_total', 'Total count of opened connections');
    this.#tcpClose = r.counter('tcp_close_total', 'Total count of closed connections');
    this.#tcpOpenConns = r.gauge('tcp_open_connections', 'Number of currently-open connections');
    this.#tcpRead = r.counter('tcp_read_bytes_total', 'Total count of bytes read from peers');
    this.#tcpWrite = r.counter('tcp_write_bytes_total', 'Total count of bytes written to peers');
    this.#detect = r.counter(
      'protocol_detect_total',
      'Outcomes of protocol detection on accepted connections',
    );
    this.#refused = r.counter('tcp_refused_total', 'Connections refused before being served');
    this.#identityExpiration = r.gauge(
      'identity_cert_expiration_timestamp_seconds',
      "Unix time at which this proxy's workload certificate expires",
    );
    this.#identityRefresh = r.counter(
      'identity_cert_refresh_total',
      'Certify calls of this proxy, by result (ok|failure)',
    );
    this.#retries = r.counter(
      'retry_total',
      'Requests and connections sent again to another endpoint, by reason (connect: the first could not be reached)',
    );
  }

  /** Series for HTTP requests to one target. `extra` labels (e.g. dst_*) are appended. */
  http(direction: Direction, authority: string, targetAddr: string, tls: string, extra?: Labels): HttpSeries {
    const key = `${direction}\0${authority}\0${targetAddr}\0${tls}${extra ? `\0${JSON.stringify(extra)}` : ''}`;
    let s = this.#httpCache.get(key);
    if (!s) {
      if (this.#httpCache.size >= MAX_CACHED) this.#httpCache.clear();
      s = this.#newHttpSeries({ direction, authority, target_addr: targetAddr, tls, ...extra });
      this.#httpCache.set(key, s);
    }
    return s;
  }

  #newHttpSeries(base: Labels): HttpSeries {
    const responses = new Map<string, { observe(ms: number): void }>();
    const responsesFamily = this.#responses;
    const latencyFamily = this.#latency;
    return {
      request: this.#requests.with(base),
      response(status, grpcStatus, error) {
        const key = `${status}\0${grpcStatus ?? ''}\0${error ?? ''}`;
        let rec = responses.get(key);
        if (!rec) {
          const failure =
            error !== undefined || status >= 500 || (grpcStatus !== undefined && grpcStatus !== '0');
          const labels: Record<string, string> = {
            ...base,
            status_code: String(status),
            classification: failure ? 'failure' : 'success',
          };
          if (grpcStatus !== undefined) labels.grpc_status = grpcStatus;
          if (error !== undefined) labels.error = error;
          const total = responsesFamily.with(labels);
          const latency: Histogram = latencyFamily.with({ ...base, status_code: String(status) });
          rec = {
            observe(ms: number) {
              total.inc();
              latency.observe(ms);
            },
          };
          responses.set(key, rec);
        }
        return rec;
      },
    };
  }

  /**
   * Series for connections: `peer` is `src` (accepted) or `dst` (opened to a next hop). `extra`
   * labels (server_id, client_id, no_tls_reason, dst_*) are appended.
   */
  tcp(direction: Direction, peer: 'src' | 'dst', targetAddr: string, tls: string, extra?: Labels): TcpSeries {
    const key = `${direction}\0${peer}\0${targetAddr}\0${tls}${extra ? `\0${JSON.stringify(extra)}` : ''}`;
    let s = this.#tcpCache.get(key);
    if (!s) {
      if (this.#tcpCache.size >= MAX_CACHED) this.#tcpCache.clear();
      const labels = { direction, peer, target_addr: targetAddr, tls, ...extra };
      const open = this.#tcpOpen.with(labels);
      const conns: Gauge = this.#tcpOpenConns.with(labels);
      const read = this.#tcpRead.with(labels);
      const write = this.#tcpWrite.with(labels);
      const closeFamily = this.#tcpClose;
      s = {
        open() {
          open.inc();
          conns.inc();
          let done = false;
          return (readBytes, writeBytes, errno) => {
            if (done) return;
            done = true;
            conns.dec();
            read.inc(readBytes);
            write.inc(writeBytes);
            closeFamily.with(errno ? { ...labels, errno } : labels).inc();
          };
        },
      };
      this.#tcpCache.set(key, s);
    }
    return s;
  }

  detected(direction: Direction, result: string): void {
    this.#detect.with({ direction, result }).inc();
  }

  refused(direction: Direction, reason: string): void {
    this.#refused.with({ direction, reason }).inc();
  }

  /** Records the notAfter (Unix ms) of the workload certificate now held. */
  identityCertificate(notAfterMs: number): void {
    this.#identityExpiration.with({}).set(Math.floor(notAfterMs / 1000));
  }

  /** Counts one certificate request (bootstrap or renewal) and its outcome. */
  identityRefreshed(result: 'ok' | 'failure'): void {
    this.#identityRefresh.with({ result }).inc();
  }

  /** Counts a request or connection sent again to another endpoint of `authority`. */
  retried(direction: Direction, authority: string, protocol: 'http' | 'tcp', reason: 'connect'): void {
    this.#retries.with({ direction, authority, protocol, reason }).inc();
  }
}
