/**
 * {@link PendingCalls}: the requests waiting for their answers, across the
 * sockets of a connection: which went out on the current socket, which wait
 * to be sent, and which a drop fails because they may or may not have run.
 *
 * @module
 */

import { isRecord } from "./errors.js";

/** How a call is sent. */
export interface CallOptions {
  /**
   * Send it again after a reconnect when the drop left it unanswered.
   * Default: for `process/start`, and `process/write` with a `writeId`,
   * which the server applies once however often they come.
   */
  readonly retry?: boolean;
  /** One of the reconnector's own calls: sent while resuming, before the calls that wait. */
  readonly internal?: boolean;
}

/** A call waiting for its response. */
export interface PendingCall {
  /** The request's method, for errors. */
  readonly method: string;
  /** The JSON text of the request, to send (again). */
  readonly text: string;
  /** Sent again after a reconnect (see {@link CallOptions.retry}). */
  readonly retry: boolean;
  /** Whether it went out on the current socket. */
  sent: boolean;
  /** Settles the call with the response's `result`. */
  readonly resolve: (result: unknown) => void;
  /** Settles the call with an error. */
  readonly reject: (error: Error) => void;
}

/** Whether a call of `method` with `params` is safe to send again (see {@link CallOptions.retry}). */
export function retryByDefault(method: string, params: unknown): boolean {
  return method === "process/start" || (method === "process/write" && isRecord(params) && typeof params["writeId"] === "string");
}

/** The calls waiting for their responses, by request id. */
export class PendingCalls {
  /** The id the next request gets; ids are never reused, across sockets too. */
  #nextId = 1;
  /** The calls, by id, in the order they were made. */
  readonly #calls = new Map<number, PendingCall>();

  /** A fresh request id. */
  newId(): number {
    const id = this.#nextId;
    this.#nextId += 1;
    return id;
  }

  /** Whether `id` was ever given out (a response to any other id is a protocol violation). */
  issued(id: number): boolean {
    return id < this.#nextId;
  }

  /** Adds the call with request id `id`. */
  add(id: number, call: PendingCall): void {
    this.#calls.set(id, call);
  }

  /** Removes and returns the call `id` answers, if it waits. */
  take(id: number): PendingCall | undefined {
    const call = this.#calls.get(id);
    this.#calls.delete(id);
    return call;
  }

  /**
   * The socket dropped: removes and returns the calls that went out and may
   * not be sent again; the ones that may wait to be sent on the next socket.
   */
  dropped(): PendingCall[] {
    const lost: PendingCall[] = [];
    for (const [id, call] of this.#calls) {
      if (!call.sent) {
        continue;
      }
      if (call.retry) {
        call.sent = false;
      } else {
        this.#calls.delete(id);
        lost.push(call);
      }
    }
    return lost;
  }

  /** The calls not sent on the current socket, in the order they were made, marked as sent. */
  takeUnsent(): PendingCall[] {
    const unsent = [...this.#calls.values()].filter((call) => !call.sent);
    for (const call of unsent) {
      call.sent = true;
    }
    return unsent;
  }

  /** Removes and returns every call. */
  drain(): PendingCall[] {
    const all = [...this.#calls.values()];
    this.#calls.clear();
    return all;
  }
}
