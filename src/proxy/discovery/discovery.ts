/**
 * The proxy's view of service discovery. The static file is the first implementation; the
 * control plane's destination stream implements the same interface later, so the outbound
 * stack never knows where endpoints come from.
 */

/** One workload's address as discovery reports it. */
export interface Endpoint {
  /** `host:port` to connect to: a weft inbound proxy when `meshed`, else the server itself. */
  readonly addr: string;
  readonly host: string;
  readonly port: number;
  /** A weft inbound proxy: speak the mesh transport (multiplexed HTTP/2, opaque header). */
  readonly meshed: boolean;
  readonly weight: number;
  /** Expected peer identity (SPIFFE ID) once mTLS exists. */
  readonly identity?: string;
  /** Extra metric labels, exported as `dst_<key>`. */
  readonly labels: Readonly<Record<string, string>>;
}

/** A live view of one service. `endpoints` changes as discovery sends updates. */
export interface Destination {
  /** Normalized `host:port`. */
  readonly authority: string;
  /** Traffic to this service is never parsed as HTTP. */
  readonly opaque: boolean;
  readonly endpoints: readonly Endpoint[];
  /**
   * Calls `listener` synchronously after each change discovery makes to this destination (the
   * change is already visible); returns the function that stops the calls.
   */
  watch(listener: () => void): () => void;
}

export interface Discovery {
  /**
   * The destination for a normalized authority, or null when the mesh does not know it (the
   * caller then forwards to the authority itself, unmeshed). May resolve asynchronously the
   * first time an authority is seen; later calls for the same authority return the cached view.
   */
  resolve(authority: string): Destination | null | Promise<Destination | null>;
  /** Stops watching; resolved destinations keep their last state. */
  close(): void;
}
