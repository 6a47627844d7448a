/**
 * Structured JSON logs on stderr, one object per line, with a level that can be changed at
 * runtime (the admin `/log-level` endpoint). Deliberately tiny: no dependency, no buffering.
 */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  level: LogLevel;
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
}

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/** A logger writing to `out` (stderr by default); `base` fields go on every line. */
export function newLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  out: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const rank = (l: LogLevel) => LOG_LEVELS.indexOf(l);
  const logger: Logger = {
    level,
    enabled: (l) => rank(l) <= rank(logger.level),
    error: (msg, fields) => write('error', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    debug: (msg, fields) => write('debug', msg, fields),
  };
  function write(l: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!logger.enabled(l)) return;
    out(`${JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...base, ...fields })}\n`);
  }
  return logger;
}
