/**
 * Node's own HTTP/1 parser (llhttp, the one node:http runs on), used without node:http's
 * message objects. `node:_http_common` is the module node:http itself takes it from; it has no
 * type declarations, so this file declares the part we use, checked against Node 20.
 */
import { createRequire } from 'node:module';

/** One llhttp parser. Callbacks are set on it by index (HTTPParser.kOn*) and run with it as `this`. */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the parse error (an Error with `code` HPE_*). */
  execute(data: Buffer): number | (Error & { code?: string });
  /** End of input: completes a message delimited by the connection's close. */
  finish(): undefined | (Error & { code?: string });
  /** Ends the parser's async-hooks resource. */
  free(): void;
  /** Deletes the native parser (not usable afterwards); without it the parser is never collected. */
  close(): void;
  remove(): void;
  [callback: number]: unknown;
}

interface HTTPParserClass {
  new (): LlhttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

export const HTTPParser: HTTPParserClass = (
  createRequire(import.meta.url)('_http_common') as { HTTPParser: HTTPParserClass }
).HTTPParser;

/**
 * Called with the head of a message: raw [name, value, ...] fields (undefined when they came
 * through kOnHeaders, in parts), and for a response its status. Returning 1 tells the parser
 * the message has no body (the response to a HEAD request).
 */
export type OnHeadersComplete = (
  this: LlhttpParser,
  versionMajor: number,
  versionMinor: number,
  rawHeaders: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number | undefined;
