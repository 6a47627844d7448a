/** The real servers tests put behind proxies: one import for all of them. */
export * from './app-grpc.js';
export * from './app-http.js';
export * from './app-tcp.js';
export * from './app-ws.js';
