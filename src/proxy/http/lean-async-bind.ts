/**
 * Node 20's `AsyncResource#bind` builds two `util.deprecate` wrappers per call for the
 * deprecated `asyncResource` accessor (DEP0172), and each wrapper is made with
 * `Object.setPrototypeOf` on a function, which V8 handles slowly. `ClientHttp2Session#request`
 * binds once per request, so on the gRPC mesh path this was 5-7% of a hop's CPU
 * (bench/profile-hops.sh with PROTO=h2: `bind` and `deprecate` under `request`). Node fixed the
 * cost upstream (nodejs/node#58218, v24) and removed the property (nodejs/node#58618); this
 * gives Node 20 the same bind without it. The async context is exactly Node's: the bound
 * function runs in the resource's scope through `runInAsyncScope`. Nothing in the proxy or its
 * dependencies reads `asyncResource` off a bound function.
 */
import { AsyncResource } from 'node:async_hooks';

let installed = false;

/**
 * Replaces `AsyncResource.prototype.bind` process-wide, once, on Node versions before 24 (which
 * have the fix). Called at proxy start (proxy.ts), before any HTTP/2 session exists.
 */
export function installLeanAsyncBind(): void {
  if (installed || Number(process.versions.node.split('.')[0]) >= 24) return;
  installed = true;
  const proto = AsyncResource.prototype;
  const nodeBind = proto.bind;
  function bind(this: AsyncResource, fn: unknown, thisArg?: unknown) {
    // Anything that is not a function gets Node's own validation error.
    if (typeof fn !== 'function') return Reflect.apply(nodeBind, this, [fn, thisArg]);
    if (thisArg !== undefined) return this.runInAsyncScope.bind(this, fn as () => void, thisArg);
    const resource = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return resource.runInAsyncScope(fn as (...a: unknown[]) => unknown, this, ...args);
    };
  }
  proto.bind = bind as unknown as typeof proto.bind;
}
