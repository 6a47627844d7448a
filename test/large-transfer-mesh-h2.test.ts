/**
 * The large-transfer suite again, with HTTP/1 carried between the proxies over the multiplexed HTTP/2
 * mesh transport (`--mesh-http1-transport h2`, weft-orig-proto restored by the inbound proxy)
 * instead of the default keep-alive HTTP/1.1 pool.
 */
import { MESH_TRANSPORT_ENV } from './support/proxy-process.js';

process.env[MESH_TRANSPORT_ENV] = 'h2';
await import('./large-transfer.test.js');
