/**
 * A 103 Early Hints response as node:http's writeEarlyHints can write it to an HTTP/1 client: its
 * check refuses a whole 103 for one Link value it does not accept, and joins list values into one
 * line. Used by downstream-h1.ts; HTTP/2 clients get a 103's fields as they came.
 */
import type { Headers } from './headers.js';

/**
 * What node:http's writeEarlyHints can write of a 103's fields: the links its check accepts, one
 * value each (repeated Link fields arrive joined with ", ", and one link it refuses fails the whole
 * 103), and the other fields that have one value (it would join a list into one line, wrong for
 * Set-Cookie). None when no link is left.
 */
export function earlyHints(fields: Headers): Record<string, string | string[]> | undefined {
  const link = fields.link;
  if (link === undefined) return undefined;
  const links = (typeof link === 'string' ? [link] : link)
    .flatMap(splitLinks)
    .filter((l) => WRITABLE_LINK.test(l));
  if (links.length === 0) return undefined;
  const hints: Record<string, string | string[]> = { link: links };
  for (const name in fields)
    if (name !== 'link' && typeof fields[name] === 'string') hints[name] = fields[name];
  return hints;
}

/**
 * A link as node:http's writeEarlyHints accepts it (Node 20): `<uri>`, then `; name` or
 * `; name=value` parameters whose values have no space, quote or semicolon (quoted or not).
 */
const WRITABLE_LINK = /^<[^>]*>(?:\s*;\s*[^;"\s]+(?:=(?:"[^;"\s]*"|[^;"\s]*))?)*$/;

/** Splits a Link field value at the commas between links (RFC 8288 §3), not those inside <> or quotes. */
export function splitLinks(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inUri = false;
  let inQuotes = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (inQuotes) {
      if (c === '\\') i++;
      else if (c === '"') inQuotes = false;
    } else if (inUri) inUri = c !== '>';
    else if (c === '<') inUri = true;
    else if (c === '"') inQuotes = true;
    else if (c === ',') {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((l) => l.length > 0);
}
