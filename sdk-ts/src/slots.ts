/**
 * {@link ConnectSlots}: a counting semaphore that bounds how many connects
 * an {@link ExecPool} runs at once.
 *
 * @module
 */

/** A fixed number of slots, taken in the order they were asked for. */
export class ConnectSlots {
  /** Slots free now. */
  #free: number;
  /** Who waits for a slot, first first. */
  readonly #waiting: (() => void)[] = [];

  /** `count` slots (at least 1). */
  constructor(count: number) {
    this.#free = Math.max(1, Math.floor(count));
  }

  /** Resolves once a slot is this caller's; give it back with {@link release}. */
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a slot back: to the first waiter, else to the free count. */
  release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) {
      this.#free += 1;
    } else {
      next();
    }
  }
}
