/**
 * Clients for policy tests, each from a chosen loopback source address (127.0.0.0/8 is all
 * loopback on Linux), so network rules can tell them apart without mTLS: an HTTP request with
 * curl `--interface`, and a TCP exchange with `localAddress`.
 */
import net from 'node:net';
import { curl, curlWriteOut, parseCurlWrite } from './curl.js';

export interface HttpOutcome {
  readonly status: number;
  /** The `weft-proxy-error` header, '' when absent. */
  readonly proxyError: string;
  /** The response head as curl printed it. */
  readonly head: string;
}

/** `GET http://<target><path>` from `from` (HTTP/1, or h2c prior knowledge with `h2`). */
export async function httpFrom(
  from: string,
  target: string,
  path: string,
  opts: { h2?: boolean; method?: string; headers?: Record<string, string> } = {},
): Promise<HttpOutcome> {
  const r = await curl([
    '--interface',
    from,
    '--max-time',
    '10',
    ...(opts.h2 ? ['--http2-prior-knowledge'] : []),
    '-X',
    opts.method ?? 'GET',
    ...Object.entries(opts.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
    '-D',
    '-',
    '-o',
    '/dev/null',
    ...curlWriteOut(['http_code']),
    `http://${target}${path}`,
  ]);
  if (r.code !== 0) throw new Error(`curl from ${from} to ${target}${path} failed (${r.code}): ${r.stderr}`);
  const { body: head, values } = parseCurlWrite(r.stdout, ['http_code']);
  const header = /^weft-proxy-error: *(.*?)\r?$/im.exec(head);
  return { status: Number(values.http_code), proxyError: header ? header[1] : '', head };
}

export interface TcpOutcome {
  /** What came back before the connection ended. */
  readonly echoed: string;
  /** The socket error code (ECONNRESET for a reset), '' for a clean close. */
  readonly error: string;
}

/** Connects from `from` to `target`, sends `text`, and waits for the echo or the end (5 s bound). */
export function tcpFrom(from: string, target: string, text: string): Promise<TcpOutcome> {
  const colon = target.lastIndexOf(':');
  return new Promise((resolve) => {
    let echoed = '';
    const socket = net.connect({
      host: target.slice(0, colon),
      port: Number(target.slice(colon + 1)),
      localAddress: from,
    });
    const done = (error: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ echoed, error });
    };
    const timer = setTimeout(() => done('ETIMEDOUT'), 5000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d: string) => {
      echoed += d;
      if (echoed.length >= text.length) done('');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    socket.on('close', () => done(''));
  });
}
