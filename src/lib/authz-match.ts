/**
 * The matchers of authorization policy (docs/policy.md), shared by the validators, the proxy and
 * `weft policy explain`: SPIFFE identity patterns, CIDR networks and HTTP path/method matches.
 * Each is pure and allocation-free on the match path once compiled.
 */
import { isIP } from 'node:net';

/**
 * A compiled identity pattern. `*` alone matches any identity; otherwise the pattern is split on
 * `/` and a segment `*` matches exactly one non-empty segment of the identity. An anchored
 * pattern (`identities`) must match the whole SPIFFE ID; a suffix pattern (`identitySuffixes`,
 * e.g. `ns/shop/sa/*`) must match its last segments, so `ns/shop/sa/*` names every account of
 * namespace `shop` in any trust domain.
 */
export interface IdentityPattern {
  readonly source: string;
  matches(identity: string): boolean;
  /** The same, for an identity already split on `/` (split once per decision, not per pattern). */
  matchesSegments(have: readonly string[]): boolean;
}

export function compileIdentityPattern(pattern: string, anchored: boolean): IdentityPattern {
  if (pattern === '*')
    return { source: pattern, matches: (id) => id !== '', matchesSegments: (have) => have.join('') !== '' };
  const want = pattern.split('/');
  return {
    source: pattern,
    matches(identity) {
      return this.matchesSegments(identity.split('/'));
    },
    matchesSegments(have) {
      if (anchored ? have.length !== want.length : have.length < want.length) return false;
      const offset = have.length - want.length;
      for (let i = 0; i < want.length; i++) {
        const w = want[i];
        const h = have[offset + i];
        if (w === '*' ? h === '' : w !== h) return false;
      }
      return true;
    },
  };
}

/** Why an identity pattern is malformed, or undefined when it is fine. */
export function identityPatternProblem(pattern: unknown, anchored: boolean): string | undefined {
  if (typeof pattern !== 'string' || pattern === '') return 'must be a non-empty string';
  if (pattern === '*') return undefined;
  if (/\s/.test(pattern)) return 'must not contain white space';
  if (anchored) {
    if (!/^spiffe:\/\/[^/]+\/[^/].*$/.test(pattern))
      return 'must be a SPIFFE ID (spiffe://<trust-domain>/ns/<ns>/sa/<account>, a segment may be *) or *';
    if (pattern.slice('spiffe://'.length).split('/').includes('')) return 'must not have empty segments';
    return undefined;
  }
  if (pattern.startsWith('/') || pattern.startsWith('spiffe:'))
    return 'must be the last segments of a SPIFFE ID without a leading "/", e.g. ns/shop/sa/*';
  if (pattern.split('/').includes('')) return 'must not have empty segments';
  return undefined;
}

/** An address range: a CIDR block, minus the `except` blocks inside it. */
export interface NetworkMatcher {
  readonly source: string;
  contains(addr: string): boolean;
  /** The same, for an address already parsed (once per decision, not per network). */
  containsAddr(addr: ParsedAddr): boolean;
}

/** An IP address as bits; v4-mapped v6 addresses are v4. */
export interface ParsedAddr {
  readonly v6: boolean;
  readonly bits: bigint;
}

/** The parsed address, or undefined when `addr` is not an IP address. */
export function parseAddr(addr: string): ParsedAddr | undefined {
  const a = normalizeAddr(addr);
  const family = isIP(a);
  return family === 0 ? undefined : { v6: family === 6, bits: addrBits(a) };
}

export interface Block {
  readonly v6: boolean;
  readonly bits: bigint;
  readonly prefix: number;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a bare address; throws an Error saying what is wrong. */
export function parseCidr(cidr: string): Block {
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) throw new Error(`"${cidr}" is not an address or CIDR block`);
  const max = family === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!/^\d+$/.test(slash < 0 ? '0' : cidr.slice(slash + 1)) || prefix > max)
    throw new Error(`"${cidr}" has a prefix length outside 0-${max}`);
  return { v6: family === 6, bits: mask(addrBits(addr), prefix, max), prefix };
}

/** True when block `inner` lies wholly inside block `outer`. */
export function blockContains(outer: Block, inner: Block): boolean {
  return (
    outer.v6 === inner.v6 &&
    inner.prefix >= outer.prefix &&
    mask(inner.bits, outer.prefix, outer.v6 ? 128 : 32) === outer.bits
  );
}

export function compileNetwork(cidr: string, except: readonly string[]): NetworkMatcher {
  const block = parseCidr(cidr);
  const holes = except.map(parseCidr);
  return {
    source: except.length === 0 ? cidr : `${cidr} except ${except.join(',')}`,
    contains(addr) {
      const a = parseAddr(addr);
      return a !== undefined && this.containsAddr(a);
    },
    containsAddr(a) {
      const inBlock = (b: Block) => b.v6 === a.v6 && mask(a.bits, b.prefix, b.v6 ? 128 : 32) === b.bits;
      return inBlock(block) && !holes.some(inBlock);
    },
  };
}

/** `::ffff:127.0.0.1` (a v4 client on a dual-stack socket) is `127.0.0.1`. */
export function normalizeAddr(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1] : addr;
}

function addrBits(addr: string): bigint {
  if (isIP(addr) === 4) return addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  // IPv6: expand `::`, then 8 groups of 16 bits (an embedded v4 tail counts as two groups).
  let text = addr;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = addrBits(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined ? [] : tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function mask(bits: bigint, prefix: number, max: number): bigint {
  const hostBits = BigInt(max - prefix);
  return (bits >> hostBits) << hostBits;
}

/** One HTTP match: a path (exact, or prefix on `/` boundaries as in Gateway API) and methods. */
export interface HttpMatchSpec {
  readonly pathExact: string;
  readonly pathPrefix: string;
  readonly methods: readonly string[];
}

/**
 * Why `path`/`method` do not satisfy `m`, or undefined when they do. Without `why` a mismatch is
 * only `'no match'` (no string is built: this runs per request).
 */
export function httpMismatch(m: HttpMatchSpec, method: string, path: string, why = true): string | undefined {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  if (m.pathExact !== '' || m.pathPrefix !== '') {
    // Every way the app might read the path must match: `/public/../admin` or
    // `/public%2f..%2fadmin` is not under /public, whatever the raw string starts with.
    for (const view of pathViews(p)) {
      if (m.pathExact !== '' && view !== m.pathExact)
        return why ? `path ${p} is not ${m.pathExact}` : NO_MATCH;
      if (m.pathPrefix !== '' && !hasPathPrefix(view, m.pathPrefix))
        return why ? `path ${p} is not under ${m.pathPrefix}` : NO_MATCH;
    }
  }
  if (m.methods.length > 0 && !m.methods.includes(method) && !m.methods.includes(method.toUpperCase()))
    return why ? `method ${method} is not one of ${m.methods.join(',')}` : NO_MATCH;
  return undefined;
}

const NO_MATCH = 'no match';

/** `/books` is a prefix of `/books` and `/books/1`, not of `/booksx`. */
function hasPathPrefix(path: string, prefix: string): boolean {
  const pre = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (pre === '/') return path.startsWith('/');
  return path === pre || path.startsWith(`${pre}/`);
}

/**
 * The readings of a request path an app may act on: as sent with dot-segments removed (`%2e`
 * counts as a dot), and with encoded or back slashes also taken as separators. A path with none
 * of these characters has one reading, itself (no allocation on the common path).
 */
export function pathViews(path: string): readonly string[] {
  if (!/[%.\\]|\/\//.test(path)) return [path];
  const dots = path.replace(/%2e/gi, '.');
  const slashes = dots.replace(/%2f|%5c/gi, '/').replace(/\\/g, '/');
  return [removeDotSegments(dots), removeDotSegments(slashes)];
}

/** RFC 3986 §5.2.4 on an absolute path, with empty segments merged (`//` reads as `/`). */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i];
    if (seg === '..') out.pop();
    else if (seg !== '.' && seg !== '') out.push(seg);
  }
  const last = segments[segments.length - 1];
  const trailing = segments.length > 1 && (last === '' || last === '.' || last === '..') && out.length > 0;
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}
