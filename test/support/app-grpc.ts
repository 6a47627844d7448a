/**
 * A real gRPC app (grpc-js) serving weft.test.Echo from test/fixtures/echo.proto on 127.0.0.1:0,
 * and a typed client for it.
 *
 * Pointing a client at an HTTP CONNECT proxy (grpc-js 1.14, build/src/http_proxy.js): at channel
 * creation grpc-js reads `grpc_proxy`, else `https_proxy`, else `http_proxy` (an `http://host:port`
 * URL), unless the channel option `grpc.enable_http_proxy` is 0 or the target host matches
 * `no_grpc_proxy`/`no_proxy`. It then connects to the proxy, sends `CONNECT <target host:port>`
 * and speaks h2c through the tunnel; `:authority` stays the original target. The same happens
 * with no environment when the channel's target is the proxy and the option
 * `grpc.http_connect_target` names the real target: `grpcClient(target, { connectProxy })` does
 * that, and is preferred because it leaves `process.env` (shared by all tests) alone.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { TestServer } from './app-http.js';
import { fixturePath } from './paths.js';

export interface EchoRequest {
  message?: string;
  count?: number;
  delayMs?: number;
  failCode?: number;
}

export interface EchoReply {
  message: string;
  index: number;
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** The generated client, typed for the call shapes the tests use (all arguments explicit). */
export interface EchoClient extends grpc.Client {
  Unary(
    req: EchoRequest,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: Callback<EchoReply>,
  ): grpc.ClientUnaryCall;
  ServerStream(
    req: EchoRequest,
    md?: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<EchoReply>;
  ClientStream(
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: Callback<EchoReply>,
  ): grpc.ClientWritableStream<EchoRequest>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

type EchoClientConstructor = new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => EchoClient;

let loaded: { service: grpc.ServiceDefinition; Client: EchoClientConstructor } | undefined;

function echoService() {
  if (!loaded) {
    const def = protoLoader.loadSync(fixturePath('echo.proto'), { defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      weft: { test: { Echo: grpc.ServiceClientConstructor } };
    };
    const Echo = pkg.weft.test.Echo;
    loaded = { service: Echo.service, Client: Echo as unknown as EchoClientConstructor };
  }
  return loaded;
}

/** Copies the request's `x-echo` values into a fresh Metadata (empty when absent). */
function echoMetadata(md: grpc.Metadata): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const v of md.get('x-echo')) out.add('x-echo', v);
  return out;
}

function failure(code: number, md: grpc.Metadata): Partial<grpc.StatusObject> {
  return { code, details: 'requested failure', metadata: echoMetadata(md) };
}

/** Waits `ms` unless the call is cancelled first (then `then` never runs). */
function after(ms: number, call: { on(e: 'cancelled', f: () => void): unknown }, then: () => void): void {
  if (ms <= 0) {
    then();
    return;
  }
  const timer = setTimeout(then, ms);
  call.on('cancelled', () => clearTimeout(timer));
}

const handlers: grpc.UntypedServiceImplementation = {
  Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
    const { message = '', delayMs = 0, failCode = 0 } = call.request;
    after(delayMs, call, () => {
      // Failing before any metadata is sent makes grpc-js answer trailers-only.
      if (failCode > 0) return cb(failure(failCode, call.metadata));
      call.sendMetadata(echoMetadata(call.metadata));
      cb(null, { message, index: 0 }, echoMetadata(call.metadata));
    });
  },
  ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
    const { message = '', count = 0, delayMs = 0, failCode = 0 } = call.request;
    call.sendMetadata(echoMetadata(call.metadata));
    const next = (index: number) => {
      if (call.cancelled) return;
      if (index >= count) {
        if (failCode > 0) return void call.emit('error', failure(failCode, call.metadata));
        return void call.end(echoMetadata(call.metadata));
      }
      call.write({ message, index });
      after(delayMs, call, () => next(index + 1));
    };
    after(delayMs, call, () => next(0));
  },
  ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
    const parts: string[] = [];
    call.on('data', (req: EchoRequest) => parts.push(req.message ?? ''));
    call.on('error', () => {});
    call.on('end', () =>
      cb(null, { message: parts.join(''), index: parts.length }, echoMetadata(call.metadata)),
    );
  },
  Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
    let index = 0;
    call.on('data', (req: EchoRequest) => call.write({ message: req.message ?? '', index: index++ }));
    call.on('error', () => {});
    call.on('end', () => call.end(echoMetadata(call.metadata)));
  },
};

/**
 * Serves Echo on 127.0.0.1:0 (plaintext h2c). Unary echoes `message` and returns each `x-echo`
 * request metadata value in both the initial and the trailing metadata; `delayMs` delays the
 * answer, `failCode` > 0 fails with that code and "requested failure" and no message
 * (trailers-only). ServerStream sends `count` replies (`delayMs` before each), then fails with
 * `failCode` if set; ClientStream joins the messages (index = how many); Bidi echoes each.
 * `close()` cancels calls in flight.
 */
export async function startGrpcApp(): Promise<TestServer> {
  const server = new grpc.Server();
  server.addService(echoService().service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    port,
    close: async () => server.forceShutdown(),
  };
}

export interface GrpcClientOptions {
  /** Extra channel options (merged over a local subchannel pool, so `close()` really disconnects). */
  channelOptions?: grpc.ChannelOptions;
  /**
   * "host:port" of an HTTP CONNECT proxy: the channel connects there and asks for `target`, with
   * `:authority` = `target`. Without it, `grpc_proxy`/`http_proxy` in the environment apply.
   */
  connectProxy?: string;
}

/** A plaintext Echo client for `target` ("host:port"). Call `client.close()` when done. */
export function grpcClient(target: string, options: GrpcClientOptions = {}): EchoClient {
  const { Client } = echoService();
  const channelOptions: grpc.ChannelOptions = {
    'grpc.use_local_subchannel_pool': 1,
    ...options.channelOptions,
  };
  if (options.connectProxy === undefined) {
    return new Client(target, grpc.credentials.createInsecure(), channelOptions);
  }
  return new Client(options.connectProxy, grpc.credentials.createInsecure(), {
    ...channelOptions,
    'grpc.enable_http_proxy': 0, // the environment must not replace the tunnel set up here
    'grpc.http_connect_target': `dns:///${target}`,
    'grpc.default_authority': target,
  });
}

/** What a call ended with: never rejects for a gRPC status; look at `status.code`. */
export interface CallOutcome<T> {
  status: grpc.StatusObject;
  /** Initial metadata, if the server sent any before the status (absent for trailers-only). */
  initialMetadata: grpc.Metadata | undefined;
  replies: T[];
}

/** Makes a Unary call; `metadata` values become request metadata. */
export function unaryCall(
  client: EchoClient,
  req: EchoRequest,
  opts: { metadata?: Record<string, string>; deadlineMs?: number } = {},
): Promise<CallOutcome<EchoReply>> {
  return collect((cb) => client.Unary(req, toMetadata(opts.metadata), callOptions(opts.deadlineMs), cb));
}

/** Makes a ServerStream call and collects every reply. */
export function serverStreamCall(
  client: EchoClient,
  req: EchoRequest,
  opts: { metadata?: Record<string, string>; deadlineMs?: number } = {},
): Promise<CallOutcome<EchoReply>> {
  return collect(() => client.ServerStream(req, toMetadata(opts.metadata), callOptions(opts.deadlineMs)));
}

function toMetadata(values: Record<string, string> = {}): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(values)) md.add(k, v);
  return md;
}

function callOptions(deadlineMs: number | undefined): grpc.CallOptions {
  return deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
}

/**
 * Runs a call and resolves once it is over: the status arrived, and also the callback (unary
 * shapes) or the end of the message stream (streaming shapes), so no reply is missed.
 */
function collect(
  start: (cb: Callback<EchoReply>) => grpc.ClientUnaryCall | grpc.ClientReadableStream<EchoReply>,
): Promise<CallOutcome<EchoReply>> {
  return new Promise((resolve) => {
    const replies: EchoReply[] = [];
    let initialMetadata: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    let bodyDone = false;
    const maybeDone = () => {
      if (status && bodyDone) resolve({ status, initialMetadata, replies });
    };
    const finishBody = () => {
      bodyDone = true;
      maybeDone();
    };
    // grpc-js never invokes the callback synchronously, so `call` is assigned before it runs.
    const call = start((_err, reply) => {
      if (reply) replies.push(reply);
      finishBody();
    });
    if ('read' in call) {
      call.on('data', (reply: EchoReply) => replies.push(reply));
      call.on('end', finishBody);
      call.on('error', finishBody); // the status carries the error
    }
    call.on('metadata', (md: grpc.Metadata) => (initialMetadata = md));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      maybeDone();
    });
  });
}
