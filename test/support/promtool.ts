/** `promtool check metrics` (Debian's prometheus package) on an exposition, for metrics tests. */
import { spawn } from 'node:child_process';

export const PROMTOOL = '/usr/bin/promtool';

/** Runs `promtool check metrics` on `exposition`: its exit code and every line it printed. */
export function promtoolCheckMetrics(exposition: string): Promise<{ code: number | null; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, lines: output.split('\n').filter((l) => l.trim() !== '') });
    });
    child.stdin.end(exposition);
  });
}
