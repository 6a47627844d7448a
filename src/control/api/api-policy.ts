/**
 * The policy routes of the public API (docs/policy.md), for `weft policy explain` and the
 * dashboard:
 *
 *   GET /api/v1/policy/inbound?namespace=NS&target=NAME
 *     → { target: { namespace, service, workload }, policy: InboundPolicy }
 *
 * NAME is a Workload (its Service and name select Servers) or else a Service (Servers selecting
 * that Service or the whole namespace). The policy is compiled by the same watcher that streams
 * policies to proxies, so the CLI evaluates exactly what proxies evaluate.
 */
import type { InboundPolicy } from '../../lib/authz.js';
import { DEFAULT_NAMESPACE } from '../../store/resource.js';
import type { Store } from '../../store/store.js';
import type { WorkloadRef } from '../policy/policy-compiler.js';
import { ApiRequestError, badRequest, MethodNotAllowedError, notFound } from './api-errors.js';

/** What the policy routes need from the control plane. */
export interface PolicySource {
  policyFor(w: WorkloadRef): InboundPolicy;
}

export interface InboundPolicyAnswer {
  readonly target: { readonly namespace: string; readonly service: string; readonly workload: string };
  readonly policy: InboundPolicy;
}

/** Answers `/api/v1/policy/...` (`rest` is the path after `policy`). */
export async function policyRoute(
  rest: readonly string[],
  method: string,
  query: string,
  store: Store,
  source: PolicySource | undefined,
): Promise<{ status: number; body: InboundPolicyAnswer }> {
  if (rest.length !== 1 || rest[0] !== 'inbound') throw notFound(`path /api/v1/policy/${rest.join('/')}`);
  if (method !== 'GET') throw new MethodNotAllowedError(method, ['GET']);
  if (!source)
    throw new ApiRequestError(
      'WEFT_ERR_INTERNAL',
      'no policy',
      'this API server is not wired to the policy service',
    );
  const q = new URLSearchParams(query);
  const namespace = q.get('namespace') || DEFAULT_NAMESPACE;
  const name = q.get('target');
  if (!name) throw badRequest('query parameter target (a Workload or Service name) is required');
  const workload = await store.get('Workload', namespace, name);
  let target: InboundPolicyAnswer['target'];
  if (workload) target = { namespace, service: workload.spec.service, workload: name };
  else if (await store.get('Service', namespace, name)) target = { namespace, service: name, workload: '' };
  else throw notFound(`Workload or Service ${namespace}/${name}`);
  return { status: 200, body: { target, policy: source.policyFor({ ...target, identity: '', ports: [] }) } };
}
