/**
 * {@link ConnectionState}: whether the client is connected, reconnecting
 * after a drop, or closed for good, and {@link StateEvents}, which tells
 * the listeners of an {@link ExecClient} each change.
 *
 * @module
 */

import type { ConnectionClosedError } from "./errors.js";

/**
 * The state of a client's connection, as
 * {@link ExecClient.connectionState} reports it and
 * {@link ExecClient.onConnectionStateChange} announces each change:
 * - `connected`: calls go to the server (after `connect`, and again after
 *   each reconnect, once the session is resumed and its output replayed);
 * - `reconnecting`: the connection dropped and attempt `attempt` (from 1)
 *   is about to be made; `lastError` is why the attempt before failed.
 *   Calls made now wait for the reconnect;
 * - `closed`: for good, with the error every call now rejects with (its
 *   message says why: closed by the client, resumed by another connection,
 *   reconnecting gave up, the server broke the protocol).
 */
export type ConnectionState =
  | { readonly status: "connected" }
  | { readonly status: "reconnecting"; readonly attempt: number; readonly lastError: Error | undefined }
  | { readonly status: "closed"; readonly error: ConnectionClosedError };

/** A listener of {@link ConnectionState} changes. */
export type ConnectionStateListener = (state: ConnectionState) => void;

/** The current state and its listeners. */
export class StateEvents {
  /** The state now. */
  #current: ConnectionState = { status: "connected" };
  /** Who hears of changes. */
  readonly #listeners = new Set<ConnectionStateListener>();

  /** The state now. */
  get current(): ConnectionState {
    return this.#current;
  }

  /**
   * Moves to `state` and tells every listener. Nothing leaves `closed`. A
   * listener that throws does not stop the others; its error is rethrown
   * in a later task, where the runtime reports it as uncaught.
   */
  set(state: ConnectionState): void {
    if (this.#current.status === "closed") {
      return;
    }
    this.#current = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }

  /** Adds `listener`; the returned function removes it. */
  subscribe(listener: ConnectionStateListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
