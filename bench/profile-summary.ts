/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile...`: where a V8 CPU profile (`node
 * --cpu-prof`) spent its time, as text: the share of the process's samples by area (our code by
 * file, Node internals by module, GC, idle) and the top functions by self time. Used by
 * bench/profile-hops.sh; the profiles themselves open as flame graphs in DevTools or speedscope.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const TOP = Number(process.env.PROFILE_TOP ?? 25);

/** Where a frame belongs: our file, a Node internal module, a dependency, or a V8 pseudo-frame. */
function area(cf: CallFrame): string {
  if (!cf.url) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const ours = /\/dist\/(src\/.*)\.js$/.exec(cf.url);
  if (ours) return ours[1];
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(cf.url);
  if (dep) return `dep:${dep[1]}`;
  const internal = /^node:(internal\/)?([^/]+(?:\/[^/]+)?)/.exec(cf.url);
  if (internal) return `node:${internal[2]}`;
  return cf.url;
}

for (const file of process.argv.slice(2)) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++)
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const totalUs = p.endTime - p.startTime;
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const a = area(cf);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
    if (a !== '(idle)') busyUs += us;
    const fn = `${cf.functionName || '(anonymous)'} ${a}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / Math.max(busyUs, 1)).toFixed(1).padStart(5)}%`;
  const out: string[] = [];
  out.push(
    `== ${basename(file)}: ${(totalUs / 1e6).toFixed(1)} s profiled, ${(busyUs / 1e6).toFixed(2)} s busy (not idle); shares of busy time`,
  );
  out.push('-- by area (self time)');
  for (const [a, us] of [...byArea]
    .filter(([a]) => a !== '(idle)')
    .sort((x, y) => y[1] - x[1])
    .slice(0, TOP))
    out.push(`${pct(us)}  ${a}`);
  out.push('-- top functions (self time)');
  for (const [fn, us] of [...byFn]
    .filter(([f]) => !f.startsWith('(idle)'))
    .sort((x, y) => y[1] - x[1])
    .slice(0, TOP))
    out.push(`${pct(us)}  ${fn}`);
  process.stdout.write(`${out.join('\n')}\n\n`);
}
