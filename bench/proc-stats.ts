/** What /proc says about another process (Linux only): memory and CPU time, for the benchmarks. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface MemorySample {
  /** Resident set size now, in bytes (VmRSS). */
  readonly rssBytes: number;
  /** Peak resident set size since the process started, in bytes (VmHWM). */
  readonly hwmBytes: number;
}

/** Fields of /proc/<pid>/status in kB (e.g. VmRSS, RssAnon); throws if the process is gone. */
export function readStatusKb<F extends string>(
  pid: number | 'self',
  fields: readonly F[],
): Record<F, number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const out = {} as Record<F, number>;
  for (const field of fields) {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    out[field] = Number(m[1]);
  }
  return out;
}

/** VmRSS and VmHWM of `pid` from /proc/<pid>/status; throws if the process is gone. */
export function readMemory(pid: number): MemorySample {
  const { VmRSS, VmHWM } = readStatusKb(pid, ['VmRSS', 'VmHWM']);
  return { rssBytes: VmRSS * 1024, hwmBytes: VmHWM * 1024 };
}

let clockTicksPerSecond: number | undefined;

/** User + system CPU seconds `pid` has used, from /proc/<pid>/stat (fields 14 and 15). */
export function readCpuSeconds(pid: number): number {
  clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return (utime + stime) / clockTicksPerSecond;
}
