/**
 * One subscriber's outgoing stream with a bounded queue (DESIGN.md §6). Messages are handed to
 * grpc-js only while its own buffer has room; the rest wait here. A subscriber more than
 * `maxQueued` messages behind is cut off, so a client that stops reading costs bounded memory and
 * never delays anyone else (fan-out only ever appends to queues).
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';

export interface SubscriberStreamOptions {
  /** Messages that may wait here (beyond grpc-js's own small buffer) before the cut-off. */
  readonly maxQueued: number;
  /** Called once when the subscriber is cut off for falling behind. */
  readonly onOverflow: () => void;
}

/** Wraps a server-streaming call. `push` never blocks and never throws. */
export class SubscriberStream<T> {
  private readonly queue: T[] = [];
  private waitingForDrain = false;
  private ended = false;

  constructor(
    private readonly call: grpc.ServerWritableStream<unknown, T>,
    private readonly options: SubscriberStreamOptions,
  ) {
    call.on('drain', () => {
      this.waitingForDrain = false;
      this.flush();
    });
  }

  /** True once ended by overflow, `end()` or the client going away. */
  get closed(): boolean {
    return this.ended || this.call.cancelled;
  }

  /** Queues one message; cuts the subscriber off when the queue is over its bound. */
  push(message: T): void {
    if (this.closed) return;
    this.queue.push(message);
    if (this.queue.length > this.options.maxQueued) this.overflow();
    else this.flush();
  }

  /** Ends the stream with `status` (OK by default) after what is queued. */
  end(status?: Partial<grpc.StatusObject>): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    if (this.call.cancelled) return;
    if (status && status.code !== grpc.status.OK) this.call.emit('error', status);
    else this.call.end();
  }

  private flush(): void {
    while (!this.waitingForDrain && this.queue.length > 0 && !this.closed) {
      if (!this.call.write(this.queue.shift() as T)) this.waitingForDrain = true;
    }
  }

  /**
   * A trailer sent after data the client is not reading would never leave (HTTP/2 flow control
   * holds the stream), so the stream is reset with ENHANCE_YOUR_CALM, which gRPC clients report
   * as RESOURCE_EXHAUSTED. grpc-js has no public call for a reset: this reaches its HTTP/2
   * stream, and falls back to a status (delivered once the client reads) if the shape changed.
   */
  private overflow(): void {
    const details = `subscriber fell more than ${this.options.maxQueued} updates behind`;
    this.options.onOverflow();
    this.end({ code: grpc.status.RESOURCE_EXHAUSTED, details });
    const stream = (this.call as unknown as { call?: { stream?: Partial<http2.ServerHttp2Stream> } }).call
      ?.stream;
    if (typeof stream?.close === 'function' && stream.closed === false)
      stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }
}
