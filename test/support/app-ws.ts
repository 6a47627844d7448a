/** A real WebSocket echo server (npm `ws`) on 127.0.0.1:0, and a client round trip helper. */
import type { ClientRequestArgs } from 'node:http';
import { type ClientOptions, type RawData, WebSocket, WebSocketServer } from 'ws';
import type { TestServer } from './app-http.js';

export interface WsEchoApp extends TestServer {
  /** Headers of each accepted upgrade request, in order (to check what a proxy forwarded). */
  readonly upgrades: Array<Record<string, string | string[] | undefined>>;
}

/** Echoes each message back with the same type (text or binary). */
export async function startWsEchoApp(): Promise<WsEchoApp> {
  const upgrades: WsEchoApp['upgrades'] = [];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws, req) => {
    upgrades.push({ ...req.headers });
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as { port: number };
  return {
    port,
    upgrades,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

/**
 * Opens `url`, sends each message in turn waiting for its echo, closes, and resolves with the
 * replies as strings. `options` goes to the `ws` client (e.g. `headers: { host }` to address a
 * proxy). Rejects on an error, an unexpected close, or after `timeoutMs` (5 s).
 */
export function wsRoundTrip(
  url: string,
  messages: string[],
  options: ClientOptions & ClientRequestArgs = {},
  timeoutMs = 5000,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const replies: string[] = [];
    const ws = new WebSocket(url, options);
    const timer = setTimeout(
      () => fail(new Error(`wsRoundTrip: timed out; replies: ${JSON.stringify(replies)}`)),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('error', fail);
    ws.on('unexpected-response', (_req, res) =>
      fail(new Error(`wsRoundTrip: upgrade answered ${res.statusCode}`)),
    );
    ws.on('open', () => (messages.length > 0 ? ws.send(messages[0]) : ws.close(1000)));
    ws.on('message', (data: RawData) => {
      replies.push(data.toString());
      if (replies.length < messages.length) ws.send(messages[replies.length]);
      else ws.close(1000);
    });
    ws.on('close', () => {
      clearTimeout(timer);
      if (replies.length === messages.length) resolve(replies);
      else reject(new Error(`wsRoundTrip: closed after ${replies.length} of ${messages.length} replies`));
    });
  });
}
