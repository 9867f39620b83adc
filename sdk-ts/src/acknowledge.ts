/**
 * {@link AcknowledgePolicy}: when the client sends `process/ack` for a
 * process. With `acknowledgeOutput` (asked whenever reconnecting is on), the
 * server keeps every byte of output it has not seen acknowledged, and stops
 * reading a process whose unacknowledged output fills
 * `limits.retainedOutputBytesPerProcess`: a client that never acknowledged
 * would stall its processes. So the client acknowledges a process each time
 * the output bytes it received since the last acknowledgement reach a
 * quarter of that retention (the server always has room for three more
 * quarters while the acknowledgement travels), and once for every process
 * right after a reconnect's replay. Pure bookkeeping: the route sends.
 *
 * @module
 */

/** Bytes of output between two acknowledgements for a server retaining `retainedOutputBytesPerProcess` bytes per process. */
export function acknowledgeEveryBytes(retainedOutputBytesPerProcess: number): number {
  return Math.max(1, Math.floor(retainedOutputBytesPerProcess / 4));
}

/** The acknowledgement state of one process. */
export class AcknowledgePolicy {
  /** Bytes received between two acknowledgements. */
  readonly #everyBytes: number;
  /** Output bytes received since the last acknowledgement was sent. */
  #bytesSinceLast = 0;
  /** The seq last acknowledged (0: none yet). */
  #acknowledged = 0;

  /** A policy that acknowledges every `everyBytes` bytes received (at least 1). */
  constructor(everyBytes: number) {
    this.#everyBytes = Math.max(1, everyBytes);
  }

  /** The seq last acknowledged, 0 before the first. */
  get acknowledged(): number {
    return this.#acknowledged;
  }

  /** Counts `bytes` of output received; returns whether an acknowledgement is due. */
  received(bytes: number): boolean {
    this.#bytesSinceLast += bytes;
    return this.#bytesSinceLast >= this.#everyBytes;
  }

  /**
   * The seq to acknowledge now that the client has everything up to
   * `position`, or `undefined` when that was already acknowledged (then the
   * count goes on, so the next move of `position` is acknowledged at once).
   * With `force` (after a reconnect's replay, on a connection that has
   * heard nothing yet) `position` is returned even when it was acknowledged
   * before.
   */
  take(position: number, force = false): number | undefined {
    if (position <= 0 || (position <= this.#acknowledged && !force)) {
      return undefined;
    }
    this.#acknowledged = Math.max(this.#acknowledged, position);
    this.#bytesSinceLast = 0;
    return position;
  }
}

/**
 * Acknowledgements of the processes no route follows (started with a raw
 * `process/start`, read with `process/read` if at all): their output is
 * acknowledged as it arrives, every `everyBytes` bytes, so that the server
 * evicts it beyond its retention as it would without `acknowledgeOutput`,
 * instead of stopping those processes.
 */
export class UnroutedAcknowledgements {
  /** Bytes received between two acknowledgements of a process. */
  readonly #everyBytes: number;
  /** Output bytes received since the last acknowledgement, by process. */
  readonly #bytes = new Map<string, number>();

  /** Acknowledgements every `everyBytes` bytes of a process's output. */
  constructor(everyBytes: number) {
    this.#everyBytes = Math.max(1, everyBytes);
  }

  /**
   * Counts a notification of `processId` at `seq` (`chunk` is an output
   * chunk's data, base64 text or a binary frame's bytes; `undefined` for
   * the exit or the close, after which the
   * process is forgotten). Returns the seq to acknowledge now, if one is due.
   */
  received(processId: string, seq: number, chunk: string | Uint8Array | undefined): number | undefined {
    if (chunk === undefined) {
      this.#bytes.delete(processId);
      return undefined;
    }
    const size = typeof chunk === "string" ? Math.floor((chunk.length * 3) / 4) : chunk.length;
    const bytes = (this.#bytes.get(processId) ?? 0) + size;
    if (bytes >= this.#everyBytes) {
      this.#bytes.set(processId, 0);
      return seq;
    }
    this.#bytes.set(processId, bytes);
    return undefined;
  }
}
