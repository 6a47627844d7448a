/**
 * What `weft run` writes to the control plane: the Service (only when absent, so a hand-written
 * one with more ports or protocols is kept) and one Workload per run, deleted on the way out.
 */
import { randomBytes } from 'node:crypto';
import type { ApiClient } from '../../lib/api-client.js';
import { WEFT_API_VERSION } from '../../store/resource.js';

export interface WorkloadRegistration {
  readonly service: string;
  readonly namespace: string;
  /** `host:port` peers reach this workload at (its proxy's inbound listener). */
  readonly inbound: string;
  /** `host:port` of its proxy's admin listener, probed by the control plane for liveness. */
  readonly admin: string;
  /** The workload's SPIFFE ID (docs/identity.md). */
  readonly identity: string;
}

/** Applies Service `name` with one port when it does not exist; resolves true when it was created. */
export async function ensureService(
  api: ApiClient,
  namespace: string,
  name: string,
  port: number,
): Promise<boolean> {
  if (await api.get('Service', namespace, name)) return false;
  await api.apply([
    {
      apiVersion: WEFT_API_VERSION,
      kind: 'Service',
      metadata: { name, namespace },
      spec: { ports: [{ port }] },
    },
  ]);
  return true;
}

/** `books-3f9a1c`: the Service name and a random suffix, a DNS label. */
export function newWorkloadName(service: string): string {
  return `${service.slice(0, 56).replace(/-+$/, '')}-${randomBytes(3).toString('hex')}`;
}

/** Applies the Workload `name`; resolves when the control plane has stored it. */
export async function registerWorkload(
  api: ApiClient,
  name: string,
  reg: WorkloadRegistration,
): Promise<void> {
  const colon = reg.inbound.lastIndexOf(':');
  await api.apply([
    {
      apiVersion: WEFT_API_VERSION,
      kind: 'Workload',
      metadata: { name, namespace: reg.namespace },
      spec: {
        service: reg.service,
        address: reg.inbound.slice(0, colon),
        port: Number(reg.inbound.slice(colon + 1)),
        adminAddress: reg.admin,
        identity: reg.identity,
      },
    },
  ]);
}
