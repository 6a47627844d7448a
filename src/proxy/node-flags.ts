/**
 * Node (V8) flags for a proxy process, given on its command line by whatever starts it: `weft
 * run` (src/platform/local/proxy-child.ts) and the bench (bench/weft-hop.sh). A proxy started by
 * hand or by a platform gets them with `NODE_OPTIONS=--max-semi-space-size=4` (node reads these
 * flags only at start: v8.setFlagsFromString from inside the process does not resize the heap).
 *
 * --max-semi-space-size: V8's young generation grows under a high allocation rate up to 16 MiB
 * per semi-space by default, 32 MiB resident for the young generation alone, and keeps it after
 * the load is gone. A proxy's garbage is short-lived request state, so 4 MiB semi-spaces collect
 * it as well at a fraction of the memory; smaller ones (1-2 MiB) cost notably more CPU per request
 * in scavenges (each has a fixed cost, and more of the in-flight state gets promoted).
 *
 * Not set: --max-old-space-size=512. It makes V8 collect the old generation at ~1.4x its live
 * size instead of ~4x, which under HTTP/2 load also frees the native memory (http2 streams,
 * buffers) that promoted garbage holds: ~20-40 MiB less at the peak. But the old generation is
 * then being marked most of the time, and the CPU per request rose by ~30% in the bench.
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
