/**
 * Small checks the spec validators share (resource.ts and resource-policy.ts): each reports a
 * problem at a field path instead of throwing, so every problem of a resource is found at once.
 */
import { isIP } from 'node:net';
import type { FieldPath } from './resource.js';

export type Report = (path: FieldPath, message: string) => void;
export type Raw = Record<string, unknown>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkDnsLabel(v: unknown, path: FieldPath, report: Report): void {
  if (typeof v !== 'string' || v.length > 63 || !DNS_LABEL.test(v))
    report(path, 'must be a DNS-1123 label (lower case a-z, 0-9 and "-", at most 63 characters)');
}

export function checkPort(v: unknown, path: FieldPath, report: Report): void {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535)
    report(path, 'must be an integer 1-65535');
}

export function isHostPort(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const colon = v.lastIndexOf(':');
  const host = v.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(v.slice(colon + 1));
  return (
    colon > 0 &&
    Number.isInteger(port) &&
    port >= 1 &&
    port <= 65535 &&
    (isIP(host) !== 0 || isHostName(host))
  );
}

export function isHostName(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

export function rejectUnknown(obj: Raw, known: readonly string[], at: FieldPath, report: Report): void {
  for (const k of Object.keys(obj)) if (!known.includes(k)) report([...at, k], 'unknown field');
}

export function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks an optional list of strings; reports and returns [] when it is not one. */
export function stringList(v: unknown, path: FieldPath, report: Report): readonly string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    report(path, 'must be a list of strings');
    return [];
  }
  return v as string[];
}
