/** The real curl as a test client: no shell, no proxy from the environment, bounded in time. */
import { execFile } from 'node:child_process';

export interface CurlResult {
  /** curl's exit code (0 = transfer done; 7 = could not connect, 52 = empty reply, 28 = timeout...). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CurlOptions {
  /** Kill curl (SIGKILL) and reject after this long (default 15 s). Prefer `--max-time` for curl's own timeout. */
  timeoutMs?: number;
  /** Added to curl's environment. */
  env?: Record<string, string>;
}

const PROXY_ENV = /^(https?|all|no)_proxy$/i;

/**
 * Runs `/usr/bin/curl -q -sS ...args` (`-q` ignores any .curlrc; `-sS` hides the progress meter but
 * keeps errors) and resolves with its exit code and output whatever that code is. Proxy variables
 * are removed from the inherited environment, so only an explicit `-x`/`--proxy` routes via a proxy.
 */
export function curl(args: string[], opts: CurlOptions = {}): Promise<CurlResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !PROXY_ENV.test(k)) env[k] = v;
  Object.assign(env, opts.env);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    execFile(
      '/usr/bin/curl',
      ['-q', '-sS', ...args],
      { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException & { killed?: boolean }).killed) {
          return reject(
            new Error(`curl ${args.join(' ')}: killed after ${timeoutMs} ms\n${stderr}`, { cause: err }),
          );
        }
        if (err && typeof err.code !== 'number') return reject(err); // could not run curl at all
        resolve({ code: err ? (err.code as unknown as number) : 0, stdout, stderr });
      },
    );
  });
}

const MARKER = '@@weft-curl-write@@';

/**
 * `-w` arguments printing the named write-out variables (`http_code`, `http_version`,
 * `size_download`, `time_total`...) on a marked last line, for `parseCurlWrite`.
 */
export function curlWriteOut(names: readonly string[]): string[] {
  return ['-w', `\\n${MARKER}${names.map((n) => `%{${n}}`).join('\\t')}`];
}

/**
 * Splits curl's stdout into the body and the write-out values. With output made by
 * `curlWriteOut(names)` the values are read from the marked line and `body` is what came before
 * it; otherwise the whole stdout is taken as the values separated by whitespace, as printed by a
 * plain `-w '%{http_code} %{http_version}'`, and `body` is empty.
 */
export function parseCurlWrite(
  stdout: string,
  names: readonly string[],
): { body: string; values: Record<string, string> } {
  const at = stdout.lastIndexOf(`\n${MARKER}`);
  const body = at >= 0 ? stdout.slice(0, at) : '';
  const fields = at >= 0 ? stdout.slice(at + MARKER.length + 1).split('\t') : stdout.trim().split(/\s+/);
  if (fields.length !== names.length) {
    throw new Error(
      `parseCurlWrite: ${fields.length} values for ${names.length} names in ${JSON.stringify(stdout)}`,
    );
  }
  return { body, values: Object.fromEntries(names.map((n, i) => [n, fields[i]])) };
}
