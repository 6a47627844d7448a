/**
 * `node dist/bench/bench-report.js RUN_DIR`: the targets of issue 5, computed from one
 * `npm run bench` run (bench/run.sh). Reads what the run left in RUN_DIR: the shared driver's
 * results.tsv, mesh-check.json (mTLS/policy checks and idle RSS per Weft proxy), weft-hops/
 * (each Weft hop's last VmRSS/VmHWM, RssAnon/RssFile and largest RssAnon sample), node-floor.json
 * (what Node itself holds idle, bench/node-floor.ts), balance.tsv and control/*.json when they
 * were run. Writes
 * RUN_DIR/results.json (everything, by path) and RUN_DIR/targets.md, and prints the latter.
 *
 * Ratios are Weft over haproxy with mTLS (haproxy-mtls, h2-haproxy-mtls) from the same run. A
 * target row is marked noisy when the driver would mark either of its rows noisy (other
 * processes took more than NOISE_PCT of the measured core).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: bench-report.js RUN_DIR');
const NOISE_PCT = Number(process.env.NOISE_PCT ?? 5);
const BASE_PORT = Number(process.env.BASE_PORT ?? 18080);
const MiB = 1024 * 1024;

type Row = Record<string, string>;

/** results.tsv (`path:key<TAB>value`) as path → key → value. */
function readDriver(): Record<string, Row> {
  const paths: Record<string, Row> = {};
  const file = join(runDir, 'results.tsv');
  if (!existsSync(file)) return paths;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    const colon = line.indexOf(':');
    if (tab < 0 || colon < 0 || colon > tab) continue;
    const path = line.slice(0, colon);
    paths[path] ??= {};
    paths[path][line.slice(colon + 1, tab)] = line.slice(tab + 1);
  }
  return paths;
}

function readJson<T>(...parts: string[]): T | undefined {
  const file = join(runDir, ...parts);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

const num = (v: string | undefined): number | undefined => {
  if (v === undefined || v === '' || v === '-') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
};

const driver = readDriver();
const noisy = (path: string): boolean => {
  const r = driver[path];
  if (!r) return false;
  return Math.max(num(r.lat_sut_other_pct) ?? 0, num(r.tput_sut_other_pct) ?? 0) > NOISE_PCT;
};
/** The figures of one driver path, derived as the driver's table shows them. */
function pathFigures(path: string) {
  const r = driver[path] ?? {};
  const tputReq = num(r.tput_requests);
  const tputCpu = num(r.tput_proxy_cpu_s);
  return {
    skipped: r.skip,
    p50_us: num(r.lat_p50_us),
    p90_us: num(r.lat_p90_us),
    p99_us: num(r.lat_p99_us),
    max_us: num(r.lat_max_us),
    rate_achieved: num(r.lat_rps),
    max_rps: num(r.tput_rps),
    cpu_us_per_request: tputReq && tputCpu !== undefined ? (1e6 * tputCpu) / tputReq : undefined,
    peak_rss_mib_all_hops: num(r.rss_kb) !== undefined ? num(r.rss_kb)! / 1024 : undefined,
    processes: num(r.nprocs),
    errors: (num(r.lat_errors) ?? 0) + (num(r.tput_errors) ?? 0),
    mtls_check: r.mtls,
    noisy: noisy(path),
    tries: num(r.tries),
  };
}

interface MeshCheck {
  checks: { proto: string; check: string; status: string; detail: string }[];
  /** VmRSS, and its split (absent in runs before the split was recorded): RssAnon + RssFile. */
  idle_rss: {
    proto: string;
    outbound_kb: number;
    inbound_kb: number;
    outbound_anon_kb?: number;
    inbound_anon_kb?: number;
    outbound_file_kb?: number;
    inbound_file_kb?: number;
  }[];
}
const meshCheck = readJson<MeshCheck>('mesh-check.json');

/** bench/node-floor.ts: idle VmRSS of bare node and of the smallest Node TLS server and client. */
interface NodeFloor {
  bare: { rss_kb: number; anon_kb: number; file_kb: number };
  tls: { rss_kb: number; anon_kb: number; file_kb: number };
}
const nodeFloor = readJson<NodeFloor>('node-floor.json');

interface MeshedCounts {
  /** From the hop's last metrics scrape: requests over mTLS (tls="true"), all requests, policy allows. */
  requests_mtls?: number;
  requests?: number;
  authz_allowed?: number;
}
/** Sums of the last /metrics scrape of a hop (its watcher scrapes every 2 s). */
function meshedCounts(file: string): MeshedCounts {
  if (!existsSync(file)) return {};
  const c = { requests_mtls: 0, requests: 0, authz_allowed: 0 };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(value)) continue;
    if (line.startsWith('request_total{')) {
      c.requests += value;
      if (line.includes('tls="true"')) c.requests_mtls += value;
    } else if (line.startsWith('inbound_http_authz_allow_total{')) c.authz_allowed += value;
  }
  return c;
}

/**
 * Each Weft hop's last memory snapshot and metrics scrape (its watcher writes them under
 * weft-hops/<port>.<pid>/). A path measured twice (noisy) has two starts per port: both are
 * listed, and the memory target takes the larger peak.
 */
function hopMemory() {
  const dir = join(runDir, 'weft-hops');
  const out: Record<
    string,
    {
      path: string;
      hop: string;
      rss_kb?: number;
      hwm_kb?: number;
      anon_kb?: number;
      file_kb?: number;
      /** The largest RssAnon the watcher sampled (the kernel keeps no peak of it). */
      anon_max_kb?: number;
    } & MeshedCounts
  > = {};
  if (!existsSync(dir)) return out;
  const names: Record<number, [string, string]> = {
    [BASE_PORT + 90]: ['custom', 'outbound'],
    [BASE_PORT + 91]: ['custom', 'inbound'],
    [BASE_PORT + 100]: ['h2-custom', 'outbound'],
    [BASE_PORT + 101]: ['h2-custom', 'inbound'],
  };
  const starts = readdirSync(dir).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
  const seen: Record<string, number> = {};
  for (const start of starts) {
    const file = join(dir, start, 'mem.txt');
    const name = names[Number(start.split('.')[0])];
    if (!name || !existsSync(file)) continue;
    const mem = Object.fromEntries(
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/))
        .map(([k, v]) => [k.replace(':', ''), Number(v)]),
    );
    const key = `${name[0]}/${name[1]}`;
    seen[key] = (seen[key] ?? 0) + 1;
    out[seen[key] > 1 ? `${key} (start ${seen[key]})` : key] = {
      path: name[0],
      hop: name[1],
      rss_kb: mem.VmRSS,
      hwm_kb: mem.VmHWM,
      anon_kb: mem.RssAnon,
      file_kb: mem.RssFile,
      anon_max_kb: mem.RssAnonMax,
      ...meshedCounts(join(dir, start, 'metrics.txt')),
    };
  }
  return out;
}
const hops = hopMemory();

function readBalance() {
  const file = join(runDir, 'balance.tsv');
  if (!existsSync(file)) return undefined;
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const keys = header.split('\t');
  return Object.fromEntries(
    lines.map((l) => {
      const v = l.split('\t');
      return [v[0], Object.fromEntries(keys.slice(1).map((k, i) => [k, num(v[i + 1]) ?? v[i + 1]]))];
    }),
  ) as Record<string, Record<string, number | string | undefined>>;
}
const balance = readBalance();

interface Fanout {
  subscribers: number;
  latencyMs: { p50: number; p99: number };
  idle: { hwmBytes: number };
  end: { hwmBytes: number };
}
const fanout1k = readJson<Fanout>('control', 'fanout-1000.json');
const fanout10k = readJson<Fanout>('control', 'fanout-10000.json');
const issuance = readJson<{ issuancesPerSecond: number; loadAverage1m?: number }>(
  'control',
  'identity-issuance.json',
);

// ------------------------------------------------------------------ targets
interface Target {
  group: string;
  target: string;
  weft?: number;
  reference?: number;
  /** weft / reference, or the absolute value when there is no reference. */
  value?: number;
  limit: number;
  /** 'max': value ≤ limit; 'min': value ≥ limit. */
  kind: 'max' | 'min';
  unit: string;
  pass?: boolean;
  noisy: boolean;
  note?: string;
  /** Memory rows only, informative (the verdict is on VmRSS): the proxy's own memory, MiB. */
  anon?: number;
  /** A ratio against haproxy (even when one side was not measured). */
  isRatio?: boolean;
}
const targets: Target[] = [];
function ratioTarget(
  group: string,
  target: string,
  weft: number | undefined,
  reference: number | undefined,
  limit: number,
  kind: 'max' | 'min',
  unit: string,
  paths: string[],
) {
  const value = weft !== undefined && reference ? weft / reference : undefined;
  targets.push({
    group,
    target,
    weft,
    reference,
    value,
    limit,
    kind,
    unit,
    pass: value === undefined ? undefined : kind === 'max' ? value <= limit : value >= limit,
    noisy: paths.some(noisy),
    isRatio: true,
  });
}
function absTarget(
  group: string,
  target: string,
  value: number | undefined,
  limit: number,
  kind: 'max' | 'min',
  unit: string,
  note?: string,
  anon?: number,
) {
  targets.push({
    group,
    target,
    weft: value,
    value,
    limit,
    kind,
    unit,
    pass: value === undefined ? undefined : kind === 'max' ? value <= limit : value >= limit,
    noisy: false,
    note,
    anon,
  });
}

const h1 = pathFigures('custom');
const h1ref = pathFigures('haproxy-mtls');
const h2 = pathFigures('h2-custom');
const h2ref = pathFigures('h2-haproxy-mtls');
const H1 = 'HTTP/1.1, 2 hops, mTLS';
const H2 = 'gRPC over HTTP/2';
ratioTarget(H1, 'p50 at 1000 req/s', h1.p50_us, h1ref.p50_us, 1.25, 'max', 'us', ['custom', 'haproxy-mtls']);
ratioTarget(H1, 'p99 at 1000 req/s', h1.p99_us, h1ref.p99_us, 1.5, 'max', 'us', ['custom', 'haproxy-mtls']);
ratioTarget(H1, 'max throughput', h1.max_rps, h1ref.max_rps, 0.75, 'min', 'req/s', [
  'custom',
  'haproxy-mtls',
]);
ratioTarget(
  H1,
  'proxy CPU per request at max',
  h1.cpu_us_per_request,
  h1ref.cpu_us_per_request,
  1.5,
  'max',
  'us',
  ['custom', 'haproxy-mtls'],
);
ratioTarget(H2, 'p99 at 1000 req/s', h2.p99_us, h2ref.p99_us, 1.5, 'max', 'us', [
  'h2-custom',
  'h2-haproxy-mtls',
]);
ratioTarget(H2, 'max throughput', h2.max_rps, h2ref.max_rps, 0.75, 'min', 'req/s', [
  'h2-custom',
  'h2-haproxy-mtls',
]);

const idleKb = meshCheck?.idle_rss.flatMap((r) => [r.outbound_kb, r.inbound_kb]) ?? [];
const maxMiB = (kbs: (number | undefined)[]): number | undefined => {
  const known = kbs.filter((v): v is number => v !== undefined);
  return known.length ? Math.max(...known) / 1024 : undefined;
};
absTarget(
  'Memory',
  'RSS per proxy, idle (largest Weft proxy)',
  idleKb.length ? Math.max(...idleKb) / 1024 : undefined,
  40,
  'max',
  'MiB',
  'mesh check: VmRSS after 200 requests and 3 s idle, per hop and protocol; RssAnon: the largest',
  maxMiB(meshCheck?.idle_rss.flatMap((r) => [r.outbound_anon_kb, r.inbound_anon_kb]) ?? []),
);
const hwms = Object.values(hops)
  .map((h) => h.hwm_kb)
  .filter((v): v is number => v !== undefined);
const fallbackHwm = [h1, h2]
  .map((p) => (p.peak_rss_mib_all_hops !== undefined ? (p.peak_rss_mib_all_hops * 1024) / 2 : undefined))
  .filter((v): v is number => v !== undefined);
absTarget(
  'Memory',
  'RSS per proxy at max load (largest Weft proxy)',
  hwms.length ? Math.max(...hwms) / 1024 : fallbackHwm.length ? Math.max(...fallbackHwm) / 1024 : undefined,
  60,
  'max',
  'MiB',
  hwms.length
    ? 'VmHWM of each hop at its last sample; RssAnon: the largest sampled each second'
    : 'driver peak RSS of both hops / 2',
  maxMiB(Object.values(hops).map((h) => h.anon_max_kb)),
);
if (balance) {
  const w = balance.weft?.p99_us;
  const rr = balance['haproxy-roundrobin']?.p99_us;
  ratioTarget(
    'Balancing (1 of 3 endpoints 10x slower)',
    'client p99, Weft vs haproxy roundrobin',
    typeof w === 'number' ? w : undefined,
    typeof rr === 'number' ? rr : undefined,
    0.5,
    'max',
    'us',
    [],
  );
}
if (fanout1k)
  absTarget(
    'Control plane',
    'propagation p99 to 1,000 subscribers',
    fanout1k.latencyMs.p99,
    100,
    'max',
    'ms',
  );
if (fanout10k) {
  absTarget(
    'Control plane',
    'control-plane RSS with 10,000 subscribed proxies',
    Math.max(fanout10k.idle.hwmBytes, fanout10k.end.hwmBytes) / MiB,
    1024,
    'max',
    'MiB',
  );
}
if (issuance) {
  absTarget(
    'Control plane',
    'certificate issuances per second',
    issuance.issuancesPerSecond,
    500,
    'min',
    '/s',
    issuance.loadAverage1m !== undefined
      ? `load average ${issuance.loadAverage1m} during the run`
      : undefined,
  );
}

// ------------------------------------------------------------------- output
const fmt = (v: number | undefined, digits = 0): string =>
  v === undefined
    ? '-'
    : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
function verdict(t: Target): string {
  if (t.pass === undefined) return 'not measured';
  if (t.pass) return 'PASS';
  const v = t.value!;
  // How far off: the factor the Weft figure must improve by to meet the limit.
  const factor = t.kind === 'max' ? v / t.limit : t.limit / v;
  return `FAIL (${fmt(factor, 2)}x off)`;
}
/** " (RssAnon a, RssFile f MiB)" when the split was recorded. */
const split = (anonKb?: number, fileKb?: number): string =>
  anonKb === undefined
    ? ''
    : ` (RssAnon ${fmt(anonKb / 1024, 1)}, RssFile ${fmt((fileKb ?? 0) / 1024, 1)} MiB)`;
const lines: string[] = [];
lines.push(`## Issue 5 targets - ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
lines.push(`Run: \`${runDir}\`. Ratios are Weft / haproxy with mTLS, same run. A (noisy) row: rerun it.`, '');
lines.push('| group | target | Weft | reference | ratio or value | limit | verdict | RssAnon (info) |');
lines.push('|---|---|---:|---:|---:|---:|---|---:|');
for (const t of targets) {
  const ratio = t.isRatio === true;
  const digits = t.unit === 'us' || t.unit === 'req/s' || t.unit === '/s' ? 0 : 1;
  lines.push(
    `| ${t.group} | ${t.target}${t.noisy ? ' (noisy)' : ''} | ${fmt(t.weft, digits)} ${t.unit} | ${
      ratio ? `${fmt(t.reference, digits)} ${t.unit}` : '-'
    } | ${ratio ? `${fmt(t.value, 2)}x` : `${fmt(t.value, digits)} ${t.unit}`} | ${t.kind === 'max' ? '≤' : '≥'} ${
      ratio ? `${t.limit}x` : `${t.limit} ${t.unit}`
    } | ${verdict(t)}${t.note ? ` - ${t.note}` : ''} | ${t.anon === undefined ? '' : `${fmt(t.anon, 1)} MiB`} |`,
  );
}
if (meshCheck) {
  lines.push('', 'Mesh check (before measuring; bench/mesh-check.sh):', '');
  for (const c of meshCheck.checks) lines.push(`- ${c.proto} ${c.check}: ${c.status} (${c.detail})`);
  for (const r of meshCheck.idle_rss)
    lines.push(
      `- ${r.proto} idle RSS: outbound ${fmt(r.outbound_kb / 1024, 1)} MiB${split(r.outbound_anon_kb, r.outbound_file_kb)}, inbound ${fmt(r.inbound_kb / 1024, 1)} MiB${split(r.inbound_anon_kb, r.inbound_file_kb)}`,
    );
}
if (nodeFloor)
  lines.push(
    '',
    "Node floor (bench/node-floor.ts; the proxy's node flags; VmRSS after the requests and 3 s idle, as in the mesh check):",
    '',
    `- bare node: ${fmt(nodeFloor.bare.rss_kb / 1024, 1)} MiB${split(nodeFloor.bare.anon_kb, nodeFloor.bare.file_kb)}`,
    `- the smallest Node TLS server and client, 200 HTTP/1.1 and 200 HTTP/2 requests, nothing else: ${fmt(nodeFloor.tls.rss_kb / 1024, 1)} MiB${split(nodeFloor.tls.anon_kb, nodeFloor.tls.file_kb)}`,
  );
if (Object.keys(hops).length) {
  lines.push(
    '',
    'Weft hops during the driver run (last samples before each stopped; metrics are scraped every 2 s, so the last seconds are missing):',
    '',
  );
  for (const [k, h] of Object.entries(hops))
    lines.push(
      `- ${k}: VmRSS ${fmt((h.rss_kb ?? 0) / 1024, 1)} MiB${split(h.anon_kb, h.file_kb)}, VmHWM ${fmt((h.hwm_kb ?? 0) / 1024, 1)} MiB${h.anon_max_kb === undefined ? '' : ` (largest RssAnon ${fmt(h.anon_max_kb / 1024, 1)} MiB)`}; at its last metrics scrape: ${fmt(h.requests_mtls)} of ${fmt(h.requests)} requests over mTLS${h.hop === 'inbound' ? `, ${fmt(h.authz_allowed)} allowed by policy` : ''}`,
    );
}
if (existsSync(join(runDir, 'balance.md')))
  lines.push('', readFileSync(join(runDir, 'balance.md'), 'utf8').trim());
const text = `${lines.join('\n')}\n`;
writeFileSync(join(runDir, 'targets.md'), text);

const paths = Object.fromEntries(Object.keys(driver).map((p) => [p, { ...pathFigures(p), raw: driver[p] }]));
const json = {
  date: new Date().toISOString(),
  runDir,
  noisePct: NOISE_PCT,
  paths,
  meshCheck,
  nodeFloor,
  weftHops: hops,
  balance,
  // Without the per-subscriber latencies of every change (in control/*.json).
  control: {
    fanout1000: fanout1k && { ...fanout1k, changes: undefined },
    fanout10000: fanout10k && { ...fanout10k, changes: undefined },
    issuance,
  },
  targets,
};
writeFileSync(join(runDir, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
process.stdout.write(text);
