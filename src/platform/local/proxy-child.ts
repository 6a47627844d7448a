/**
 * The sidecar of `weft run`: a `weft proxy` child process (docs/proxy-contract.md) with every
 * listener on 127.0.0.1:0, started in its own process group (a terminal's Ctrl-C reaches only
 * `weft run`, which forwards it to the app, and the proxy only stops when `weft run` says so) and
 * with `parent-watch` preloaded (it stops when `weft run` dies). Resolves once the proxy's
 * "proxy ready" line reports the real ports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { formatHostPort, type HostPort } from '../../lib/addr.js';
import { WeftError } from '../../lib/errors.js';
import type { UpstreamBinding } from '../../proxy/config.js';
import { PROXY_NODE_FLAGS } from '../../proxy/node-flags.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** bin/weft.js, from dist/src/platform/local. */
const WEFT_BIN = join(HERE, '..', '..', '..', '..', 'bin', 'weft.js');
const PARENT_WATCH = join(HERE, 'parent-watch.js');

export interface ProxyChildOptions {
  readonly appPort: number;
  readonly destinationAddr: HostPort;
  readonly upstreams: readonly UpstreamBinding[];
  readonly logLevel: string;
  /** Gives up (and kills the proxy) after this long without a ready line (default 15000 ms). */
  readonly readyTimeoutMs?: number;
  /** The workload identity settings (docs/identity.md); without them the proxy has no identity. */
  readonly identity?: {
    readonly identity: string;
    readonly identityAddr: string;
    readonly tokenFile: string;
    readonly trustAnchorsFile: string;
  };
  /** Every stderr line of the proxy after its ready line (default: copied to our stderr). */
  readonly onLogLine?: (line: string) => void;
}

export interface ProxyChild {
  readonly pid: number;
  readonly outbound: string;
  readonly inbound: string;
  readonly admin: string;
  readonly upstreams: Readonly<Record<string, string>>;
  readonly child: ChildProcess;
  /** Settles when the proxy has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The proxy exited or stayed silent before its ready line. */
export class ProxyStartError extends WeftError {
  constructor(message: string) {
    super('WEFT_ERR_PROXY_START', 0, 'proxy_internal_error', 'proxy start', message);
  }
}

/** Starts the sidecar; rejects with a ProxyStartError (its stderr included) when it never becomes ready. */
export function startProxyChild(opts: ProxyChildOptions): Promise<ProxyChild> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('WEFT_PROXY_')) env[k] = v;
  Object.assign(env, {
    WEFT_PROXY_APP_PORT: String(opts.appPort),
    WEFT_PROXY_DESTINATION_ADDR: formatHostPort(opts.destinationAddr),
    WEFT_PROXY_UPSTREAMS: opts.upstreams.map((u) => `${u.name}=${u.localPort}`).join(','),
    WEFT_PROXY_OUTBOUND_LISTEN_ADDR: '127.0.0.1:0',
    WEFT_PROXY_INBOUND_LISTEN_ADDR: '127.0.0.1:0',
    WEFT_PROXY_ADMIN_LISTEN_ADDR: '127.0.0.1:0',
    WEFT_PROXY_LOG_LEVEL: opts.logLevel,
  });
  if (opts.identity)
    Object.assign(env, {
      WEFT_PROXY_IDENTITY: opts.identity.identity,
      WEFT_PROXY_IDENTITY_ADDR: opts.identity.identityAddr,
      WEFT_PROXY_IDENTITY_TOKEN_FILE: opts.identity.tokenFile,
      WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE: opts.identity.trustAnchorsFile,
    });
  const child = spawn(process.execPath, [...PROXY_NODE_FLAGS, '--import', PARENT_WATCH, WEFT_BIN, 'proxy'], {
    env,
    detached: true,
    stdio: ['pipe', 'inherit', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const early: string[] = [];
  const forward = opts.onLogLine ?? ((line: string) => process.stderr.write(`${line}\n`));
  return new Promise((resolve, reject) => {
    let ready = false;
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new ProxyStartError(`the proxy ${why}; its output:\n${early.join('\n')}`));
    };
    const timer = setTimeout(
      () => fail(`was not ready within ${opts.readyTimeoutMs ?? 15_000} ms`),
      opts.readyTimeoutMs ?? 15_000,
    );
    child.once('error', (err) => fail(`could not start (${err.message})`));
    void exited.then(({ code, signal }) => {
      if (!ready) fail(`exited before it was ready (${signal ?? `code ${code}`})`);
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      if (ready) return forward(line);
      early.push(line);
      const entry = parseReadyLine(line);
      if (!entry) return;
      ready = true;
      clearTimeout(timer);
      resolve({ pid: child.pid as number, ...entry, child, exited });
    });
  });
}

function parseReadyLine(
  line: string,
): Pick<ProxyChild, 'outbound' | 'inbound' | 'admin' | 'upstreams'> | undefined {
  if (!line.includes('"proxy ready"')) return undefined;
  try {
    const e = JSON.parse(line) as Record<string, unknown>;
    if (e.msg !== 'proxy ready') return undefined;
    return {
      outbound: String(e.outbound),
      inbound: String(e.inbound),
      admin: String(e.admin),
      upstreams: (e.upstreams ?? {}) as Record<string, string>,
    };
  } catch {
    return undefined;
  }
}
