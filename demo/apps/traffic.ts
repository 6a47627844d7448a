/**
 * The demo's traffic generator, run as `weft run --service traffic`: calls http://web:7001/
 * through HTTP_PROXY at DEMO_RATE requests a second (default 5), never more than DEMO_MAX_IN_FLIGHT
 * (default 10) at once (a tick is skipped instead), until SIGTERM/SIGINT. Every 10 s it prints a
 * one-line tally.
 */
import http from 'node:http';
import { SERVICE_PORTS } from '../paths.js';

const rate = Math.max(0.1, Math.min(100, Number(process.env.DEMO_RATE ?? 5)));
const maxInFlight = Number(process.env.DEMO_MAX_IN_FLIGHT ?? 10);
const proxy = new URL(process.env.HTTP_PROXY ?? 'http://127.0.0.1:4140');
const WEB = `web:${SERVICE_PORTS.web}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
const tally = new Map<string, number>();
let inFlight = 0;
let skipped = 0;

function count(outcome: string): void {
  tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
}

function send(): void {
  if (inFlight >= maxInFlight) {
    skipped++;
    return;
  }
  inFlight++;
  const req = http.request(
    { host: proxy.hostname, port: Number(proxy.port), path: `http://${WEB}/`, headers: { host: WEB }, agent },
    (res) => {
      res.resume();
      res.on('end', () => {
        inFlight--;
        count(String(res.statusCode));
      });
    },
  );
  req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
  req.on('error', () => {
    inFlight--;
    count('error');
  });
  req.end();
}

const ticker = setInterval(send, 1000 / rate);
const reporter = setInterval(() => {
  const parts = [...tally.entries()].sort().map(([k, v]) => `${k}: ${v}`);
  process.stdout.write(
    `traffic: ${parts.join(', ') || 'nothing yet'}${skipped ? `, skipped: ${skipped}` : ''}\n`,
  );
}, 10_000);
process.stdout.write(`${JSON.stringify({ app: 'traffic', rate, target: WEB, pid: process.pid })}\n`);

const stop = () => {
  clearInterval(ticker);
  clearInterval(reporter);
  agent.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
