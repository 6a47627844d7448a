/**
 * The policy part of `weft check`, a pure function of the listed resources: do the Servers and
 * AuthorizationPolicies (docs/policy.md) refer to things that exist? Field-level validity is not
 * re-checked: the store validated every resource on apply.
 */
import type { Resource } from '../store/resource.js';
import type { CheckResult, CheckStatus } from './check-evaluate.js';

/** What the policy check reads from the store. */
export interface PolicyResources {
  readonly services: readonly Resource<'Service'>[];
  readonly workloads: readonly Resource<'Workload'>[];
  readonly servers: readonly Resource<'Server'>[];
  readonly authorizations: readonly Resource<'AuthorizationPolicy'>[];
}

/**
 * Every AuthorizationPolicy must target an existing Server (fail: it authorizes nothing, so the
 * calls it was written for are denied), or a Namespace holding at least one Server (warn).
 * Every Server should select a port some Service declares (warn: it applies to nothing yet).
 */
export function evaluatePolicy(r: PolicyResources): CheckResult[] {
  const out: CheckResult[] = [];
  const key = (ns: string, name: string) => `${ns}/${name}`;
  const services = new Map(r.services.map((s) => [key(s.metadata.namespace, s.metadata.name), s]));
  const workloads = new Map(r.workloads.map((w) => [key(w.metadata.namespace, w.metadata.name), w]));
  const servers = new Set(r.servers.map((s) => key(s.metadata.namespace, s.metadata.name)));
  for (const s of sorted(r.servers)) {
    const ns = s.metadata.namespace;
    const subject = `Server ${key(ns, s.metadata.name)}`;
    const { service, workload } = s.spec.selector;
    let candidates: string[];
    let problem: string | undefined;
    if (workload !== undefined) {
      const w = workloads.get(key(ns, workload));
      if (!w) problem = `selects Workload ${workload}, which does not exist`;
      else if (service !== undefined && w.spec.service !== service)
        problem = `selects Workload ${workload} of Service ${service}, but it serves ${w.spec.service}`;
      candidates = w ? [w.spec.service] : [];
    } else if (service !== undefined) {
      if (!services.has(key(ns, service))) problem = `selects Service ${service}, which does not exist`;
      candidates = [service];
    } else {
      candidates = r.services.filter((x) => x.metadata.namespace === ns).map((x) => x.metadata.name);
    }
    const withPort = candidates.filter((c) =>
      services.get(key(ns, c))?.spec.ports.some((p) => p.port === s.spec.port),
    );
    if (!problem && withPort.length === 0)
      problem =
        candidates.length === 0
          ? `selects every workload of namespace ${ns}, which has no Service`
          : `port ${s.spec.port} is not a port of Service ${candidates.join(', ')}`;
    out.push({
      group: 'policy',
      subject,
      status: problem ? 'warn' : 'ok',
      message: problem ?? `selects port ${s.spec.port} of Service ${withPort.join(', ')}`,
    });
  }
  for (const p of sorted(r.authorizations)) {
    const ns = p.metadata.namespace;
    const ref = p.spec.targetRef;
    const subject = `AuthorizationPolicy ${key(ns, p.metadata.name)}`;
    const push = (status: CheckStatus, message: string) =>
      out.push({ group: 'policy', subject, status, message });
    if (ref.kind === 'Server') {
      if (servers.has(key(ns, ref.name))) push('ok', `targets Server ${ref.name}`);
      else
        push(
          'fail',
          `targets Server ${ref.name}, which does not exist in namespace ${ns}: it authorizes nothing`,
        );
    } else if (r.servers.some((s) => s.metadata.namespace === ns))
      push('ok', `targets every Server of namespace ${ns}`);
    else push('warn', `targets namespace ${ns}, which has no Server: it authorizes nothing yet`);
  }
  if (out.length === 0)
    out.push({
      group: 'policy',
      subject: 'policy resources',
      status: 'ok',
      message: 'no Server or AuthorizationPolicy',
    });
  return out;
}

function sorted<T extends Resource>(rs: readonly T[]): T[] {
  const k = (x: T) => `${x.metadata.namespace}/${x.metadata.name}`;
  return [...rs].sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
}
