/** The environment `weft run` gives the app: its port, its proxy, and its upstreams. */

export interface AppEnvInputs {
  readonly appPort: number;
  /** `host:port` of the proxy's outbound listener. */
  readonly outbound: string;
  /** Upstream name (as given to `--upstream`) → `127.0.0.1:P` of its local listener. */
  readonly upstreams: Readonly<Record<string, string>>;
}

/** `books.shop:7002` → `WEFT_UPSTREAM_BOOKS_SHOP_7002`. */
export function upstreamEnvName(name: string): string {
  return `WEFT_UPSTREAM_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * `base` plus PORT, the proxy variables (HTTP_PROXY, http_proxy, grpc_proxy; NO_PROXY and
 * no_proxy for loopback, so the app's calls to itself do not loop through its own proxy) and
 * one WEFT_UPSTREAM_<NAME> per upstream.
 */
export function appEnv(
  base: Readonly<Record<string, string | undefined>>,
  inputs: AppEnvInputs,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith('WEFT_PROXY_')) env[k] = v;
  const proxyUrl = `http://${inputs.outbound}`;
  Object.assign(env, {
    PORT: String(inputs.appPort),
    HTTP_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    grpc_proxy: proxyUrl,
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
  });
  for (const [name, addr] of Object.entries(inputs.upstreams)) env[upstreamEnvName(name)] = addr;
  return env;
}
