/**
 * One configuration parser for every Weft process. A process declares its settings as a table
 * (name, environment variable, default, parser) and calls `parseSettings` once: every problem is
 * collected and reported together in one ConfigError before anything binds a port, and the
 * result is frozen. Tests pass a plain map instead of `process.env`.
 */
import { ConfigError } from './errors.js';

/** Turns the raw text of one setting into its value, or throws an Error saying what is wrong. */
export type SettingParser<T> = (raw: string) => T;

export interface Setting<T> {
  /** Environment variable, e.g. `WEFT_PROXY_ADMIN_LISTEN_ADDR`. */
  readonly env: string;
  /** Raw default (parsed like a user value), or undefined for "not set". */
  readonly default?: string;
  readonly parse: SettingParser<T>;
  /** One line for `--help` and docs, with the unit. */
  readonly doc: string;
}

export type SettingsSpec = Record<string, Setting<unknown>>;
export type SettingsOf<S extends SettingsSpec> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T>
    ? S[K]['default'] extends string
      ? T
      : T | undefined
    : never;
};

/**
 * Parses every setting of `spec` from `source` (environment-like map). Throws one ConfigError
 * naming every bad variable and its value; never returns a partly parsed result.
 */
export function parseSettings<S extends SettingsSpec>(
  spec: S,
  source: Readonly<Record<string, string | undefined>>,
): SettingsOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, setting] of Object.entries(spec)) {
    const raw = source[setting.env] ?? setting.default;
    if (raw === undefined) {
      out[key] = undefined;
      continue;
    }
    try {
      out[key] = setting.parse(raw);
    } catch (err) {
      problems.push(`${setting.env}=${JSON.stringify(raw)}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as SettingsOf<S>;
}

/** The flag that mirrors an environment variable: WEFT_PROXY_APP_PORT → --app-port. */
export function flagFor(env: string, prefix: string): string {
  return `--${env.slice(prefix.length).toLowerCase().replaceAll('_', '-')}`;
}

/** The commander option name of a setting's flag: WEFT_PROXY_APP_PORT → appPort. */
function optionKey(env: string, prefix: string): string {
  return flagFor(env, prefix)
    .slice(2)
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** `[flags, description]` for one `--flag <value>` option per setting (except those in `skip`). */
export function settingOptions(
  spec: SettingsSpec,
  prefix: string,
  skip: readonly string[] = [],
): [string, string][] {
  return Object.values(spec)
    .filter((s) => !skip.includes(s.env))
    .map((s) => [`${flagFor(s.env, prefix)} <value>`, `${s.doc} [${s.env}]`]);
}

/** The environment with every flag given on the command line written over its variable. */
export function envWithFlags(
  spec: SettingsSpec,
  prefix: string,
  opts: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string | undefined> {
  const merged: Record<string, string | undefined> = { ...env };
  for (const setting of Object.values(spec)) {
    const v = opts[optionKey(setting.env, prefix)];
    if (typeof v === 'string') merged[setting.env] = v;
  }
  return merged;
}

// Parsers used by the settings tables.

export const parseIntIn =
  (min: number, max: number): SettingParser<number> =>
  (raw) => {
    const n = Number(raw.trim());
    if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max)
      throw new Error(`expected an integer from ${min} to ${max}`);
    return n;
  };

export const parseOneOf =
  <T extends string>(choices: readonly T[]): SettingParser<T> =>
  (raw) => {
    if (!(choices as readonly string[]).includes(raw))
      throw new Error(`expected one of ${choices.join(', ')}`);
    return raw as T;
  };

export const parseList =
  <T>(item: SettingParser<T>): SettingParser<readonly T[]> =>
  (raw) =>
    Object.freeze(
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map(item),
    );

export const parseString: SettingParser<string> = (raw) => raw;
