/** `GET /metrics` of the control plane's API port: Prometheus text exposition format 0.0.4. */
import type http from 'node:http';
import type { Logger } from '../../lib/log.js';
import type { ControlMetrics } from './control-metrics.js';

/** The request handler for `/metrics` (the API server routes that path here). */
export function metricsEndpoint(metrics: ControlMetrics, log: Logger): http.RequestListener {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('use GET\n');
    }
    metrics.render().then(
      (text) => {
        res.writeHead(200, {
          'content-type': 'text/plain; version=0.0.4; charset=utf-8',
          'content-length': Buffer.byteLength(text),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.error('rendering metrics failed', { error: err instanceof Error ? err.stack : String(err) });
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('rendering metrics failed\n');
      },
    );
  };
}
