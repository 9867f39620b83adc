/**
 * {@link Backoff}: when the client tries to reconnect after a drop. The
 * first attempt goes at once (see `reconnect.ts`); the second waits
 * `initialDelayMs`, each next one twice as long as the
 * one before, at most `maxDelayMs`, and there are no more attempts once the
 * give-up time is reached: the session's TTL after the drop (the server has
 * ended the session by then), or `maxElapsedMs` when that is shorter. Pure
 * arithmetic on times the caller passes, so it is tested without waiting.
 *
 * @module
 */

/** How the client reconnects; every time in milliseconds. */
export interface ReconnectPolicy {
  /** Wait before the first attempt. */
  readonly initialDelayMs: number;
  /** Longest wait between two attempts; the wait doubles up to it. */
  readonly maxDelayMs: number;
  /** Longest time to keep trying after a drop; the session's TTL bounds it too. */
  readonly maxElapsedMs: number;
}

/** The attempts after one drop. */
export class Backoff {
  /** The policy's delays. */
  readonly #policy: ReconnectPolicy;
  /** When to stop trying, in the clock's milliseconds. */
  readonly #giveUpAt: number;
  /** The wait before the next attempt. */
  #delay: number;

  /**
   * The attempts after a drop at `droppedAt` from a session the server keeps
   * `sessionTtlMs` after a drop (both in the same clock's milliseconds).
   */
  constructor(policy: ReconnectPolicy, droppedAt: number, sessionTtlMs: number) {
    this.#policy = policy;
    this.#giveUpAt = droppedAt + Math.min(sessionTtlMs, policy.maxElapsedMs);
    this.#delay = Math.max(0, policy.initialDelayMs);
  }

  /** When the client stops trying. */
  get giveUpAt(): number {
    return this.#giveUpAt;
  }

  /**
   * The wait before the next attempt, asked at `now`, or `undefined` when
   * the give-up time is reached. The last wait is cut short to end at the
   * give-up time, so the last attempt is made while the session may still
   * be there.
   */
  next(now: number): number | undefined {
    if (now >= this.#giveUpAt) {
      return undefined;
    }
    const delay = Math.min(this.#delay, this.#giveUpAt - now);
    this.#delay = Math.min(Math.max(1, this.#delay * 2), Math.max(this.#policy.maxDelayMs, this.#policy.initialDelayMs));
    return delay;
  }
}
