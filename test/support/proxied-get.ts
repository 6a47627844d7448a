/** A GET through an outbound proxy as `HTTP_PROXY` clients send it, for load loops in mesh tests. */
import http from 'node:http';

/**
 * GETs `http://<authority><path>` in absolute form through the proxy at `outbound` on a new
 * connection; resolves on 200, rejects with the status and the start of the body otherwise (or
 * after 15 s without an answer).
 */
export function proxiedGet(outbound: string, authority: string, path: string): Promise<void> {
  const [host, port] = outbound.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port: Number(port),
        path: `http://${authority}${path}`,
        headers: { host: authority },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode} ${body.slice(0, 200)}`)),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}
