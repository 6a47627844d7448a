import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../lib/errors.js';
import { newLogger } from '../../lib/log.js';
import type { Destination, Discovery } from './discovery.js';
import { newStaticDiscovery, parseDestinationsFile } from './discovery-static.js';

/** The problems of the ConfigError `fn` throws. */
function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    assert.equal(err.code, 'WEFT_ERR_CONFIG');
    return err.problems;
  }
  assert.fail('no error thrown');
}

const addrs = (d: Destination) => d.endpoints.map((e) => e.addr);

describe('parseDestinationsFile', () => {
  it('reads destinations with normalized authorities and endpoint defaults', () => {
    const table = parseDestinationsFile(
      'd.yaml',
      [
        'destinations:',
        '  - authority: Books:7002',
        '    opaque: true',
        '    endpoints:',
        '      - address: 127.0.0.1:4143',
        '        meshed: true',
        '        weight: 3',
        '        labels: { pod: books-0 }',
        '      - address: 10.0.0.2:7002',
        '  - authority: authors',
        '    endpoints: []',
      ].join('\n'),
    );
    assert.deepEqual([...table.keys()], ['books:7002', 'authors:80']);
    const books = table.get('books:7002')!;
    assert.equal(books.opaque, true);
    assert.deepEqual(
      books.endpoints.map((e) => [e.addr, e.meshed, e.weight, { ...e.labels }]),
      [
        ['127.0.0.1:4143', true, 3, { pod: 'books-0' }],
        ['10.0.0.2:7002', false, 1, {}],
      ],
    );
    assert.deepEqual(table.get('authors:80')!.endpoints, []);
  });

  it('names the file, the line and the field of every problem, all at once', () => {
    const text = [
      'destinations:', // 1
      '  - authority: books:7002', // 2
      '    endpoints:', // 3
      '      - address: 127.0.0.1:1', // 4
      '      - address: nope', // 5
      '      - address: 127.0.0.1:2', // 6
      '        weight: -1', // 7
      '  - opaque: false', // 8
      '    authority: "bad:port:x"', // 9
      '    endpoints: []', // 10
      '  - authority: shelves:80', // 11
      '    endpoints: { address: 127.0.0.1:3 }', // 12
      '  - just a string', // 13
    ].join('\n');
    const problems = problemsOf(() => parseDestinationsFile('/etc/weft/d.yaml', text));
    assert.deepEqual(problems, [
      '/etc/weft/d.yaml:5: destinations[0].endpoints[1].address: "nope" has no valid port',
      '/etc/weft/d.yaml:7: destinations[0].endpoints[2].weight: must be a number >= 0',
      '/etc/weft/d.yaml:9: destinations[1].authority: "bad:port:x" is not host:port',
      '/etc/weft/d.yaml:11: destinations[2].endpoints must be a list',
      '/etc/weft/d.yaml:13: destinations[3] must be a map',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    const problems = problemsOf(() =>
      parseDestinationsFile('d.yaml', 'destinations:\n  - authority: a:1\n    endpoints: [\n'),
    );
    assert.ok(problems.length >= 1);
    assert.match(problems[0], /^d\.yaml:\d+: /);
  });

  it('requires a list of destinations', () => {
    assert.deepEqual(
      problemsOf(() => parseDestinationsFile('d.yaml', 'destination: []\n')),
      ['d.yaml: field "destinations" must be a list'],
    );
  });
});

describe('newStaticDiscovery (reloads)', () => {
  let dir: string;
  let path: string;
  const logLines: string[] = [];
  const log = newLogger('debug', {}, (line) => logLines.push(line));
  const opened: Discovery[] = [];
  const RELOADED = 'destinations reloaded';
  const RELOAD_FAILED = 'destinations reload failed; keeping previous state';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-discovery-'));
    path = join(dir, 'destinations.yaml');
  });
  after(async () => {
    for (const d of opened) d.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Replaces the file the way editors and volume updates do: write aside, then rename. */
  async function writeAtomically(lines: string[]): Promise<void> {
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${lines.join('\n')}\n`);
    await rename(tmp, path);
  }

  const oneService = (authority: string, endpoints: string[]) => [
    'destinations:',
    `  - authority: ${authority}`,
    '    endpoints:',
    ...endpoints.flatMap((a) => [`      - address: ${a}`, '        meshed: true']),
  ];

  const entries = (msg: string) =>
    logLines.map((l) => JSON.parse(l) as Record<string, string>).filter((e) => e.msg === msg);

  /** Polls (the file watcher polls every 250 ms) until `msg` was logged more than `count` times. */
  async function untilLogged(msg: string, count: number): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (entries(msg).length <= count) {
      if (Date.now() > deadline) throw new Error(`no "${msg}" log line in time\n${logLines.join('')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it('throws a ConfigError naming the file when it cannot be read', () => {
    const missing = join(tmpdir(), 'weft-no-such-dir', 'destinations.yaml');
    assert.deepEqual(
      problemsOf(() => newStaticDiscovery(missing, log)),
      [`${missing}: cannot read the destinations file: ENOENT`],
    );
  });

  it('keeps the same Destination objects across reloads with new endpoints; a broken reload changes nothing', async () => {
    await writeAtomically(oneService('books:7002', ['127.0.0.1:4001']));
    const discovery = newStaticDiscovery(path, log);
    opened.push(discovery);
    const books = (await discovery.resolve('books:7002')) as Destination;
    assert.deepEqual(addrs(books), ['127.0.0.1:4001']);
    assert.equal(await discovery.resolve('authors:80'), null);

    let reloads = entries(RELOADED).length;
    await writeAtomically([
      'destinations:',
      '  - authority: books:7002',
      '    endpoints: [{ address: 127.0.0.1:4002 }, { address: 127.0.0.1:4003 }]',
      '  - authority: authors:80',
      '    endpoints: [{ address: 127.0.0.1:4004 }]',
    ]);
    await untilLogged(RELOADED, reloads);
    assert.equal(await discovery.resolve('books:7002'), books, 'the same object as before');
    assert.deepEqual(addrs(books), ['127.0.0.1:4002', '127.0.0.1:4003']);
    const authors = (await discovery.resolve('authors:80')) as Destination;
    assert.deepEqual(addrs(authors), ['127.0.0.1:4004']);

    // A broken file: logged with file:line and the field, and nothing changes.
    const failures = entries(RELOAD_FAILED).length;
    await writeAtomically(oneService('books:7002', ['127.0.0.1:4005', 'no-port']));
    await untilLogged(RELOAD_FAILED, failures);
    const failure = entries(RELOAD_FAILED).at(-1)!;
    assert.equal(failure.level, 'error');
    assert.ok(
      failure.error.includes(`${path}:6: destinations[0].endpoints[1].address: "no-port"`),
      failure.error,
    );
    assert.equal(await discovery.resolve('books:7002'), books);
    assert.deepEqual(addrs(books), ['127.0.0.1:4002', '127.0.0.1:4003']);
    assert.equal(await discovery.resolve('authors:80'), authors);
    assert.deepEqual(addrs(authors), ['127.0.0.1:4004']);

    // Fixed again: applied to the same objects.
    reloads = entries(RELOADED).length;
    await writeAtomically(oneService('books:7002', ['127.0.0.1:4006']));
    await untilLogged(RELOADED, reloads);
    assert.equal(await discovery.resolve('books:7002'), books);
    assert.deepEqual(addrs(books), ['127.0.0.1:4006']);
    // authors left the file: unknown again (forwarded unmeshed), and a balancer still holding
    // its Destination sees no endpoints.
    assert.equal(await discovery.resolve('authors:80'), null);
    assert.deepEqual(addrs(authors), []);

    // After close() the file is no longer followed. A second reader of the same path shares
    // the stat poller, so once it has seen a change the closed one would have seen it too.
    discovery.close();
    const other = newStaticDiscovery(path, log);
    opened.push(other);
    reloads = entries(RELOADED).length;
    await writeAtomically(oneService('books:7002', ['127.0.0.1:4007']));
    await untilLogged(RELOADED, reloads);
    assert.deepEqual(addrs((await other.resolve('books:7002')) as Destination), ['127.0.0.1:4007']);
    assert.deepEqual(addrs(books), ['127.0.0.1:4006']);
    assert.equal(entries(RELOADED).length, reloads + 1, 'only the open reader reloaded');
  });
});
