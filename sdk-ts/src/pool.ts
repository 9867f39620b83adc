/**
 * {@link ExecPool}: one client for many exec-servers, each a named endpoint
 * (a WebSocket URL and its {@link ConnectOptions}), as the Rust SDK's
 * `ExecPool`.
 *
 * The pool adds only bookkeeping to {@link ExecClient}: connections open on
 * first use, at most a few at once ({@link ConnectSlots}); a dropped
 * connection is resumed by the client's own reconnect (the pool never
 * redials a live session); a connection closed for good is replaced by a
 * new one on the next use; each endpoint reports its
 * {@link EndpointHealth}.
 *
 * @module
 */

import { type ConnectOptions, ExecClient, type SpawnOptions } from "./client.js";
import { UnknownEndpointError } from "./errors.js";
import type { RemoteProcess } from "./process.js";
import { ConnectSlots } from "./slots.js";
import type { ConnectionState } from "./state.js";

/** How many connects a pool runs at once unless {@link PoolOptions.maxConcurrentConnects} says otherwise. */
export const DEFAULT_MAX_CONCURRENT_CONNECTS = 16;

/**
 * Where one endpoint stands:
 * - `idle`: never used; the pool connects on first use;
 * - `queued`: a connect waits for one of the pool's connect slots;
 * - `connecting`: opening the WebSocket and the handshake, holding a slot;
 * - `connected`: calls go to the server;
 * - `reconnecting`: the connection dropped and the client is resuming the
 *   session (attempt `attempt`, from 1); calls wait for it;
 * - `failed`: the last connect failed, or the connection closed for good
 *   without the pool closing it ({@link EndpointHealth.lastFailure} says
 *   why; a client closed by its user shows here too). The next use
 *   connects again, to a new session;
 * - `closed`: the pool closed it ({@link ExecPool.remove}, {@link ExecPool.close}).
 */
export type EndpointState =
  | { readonly status: "idle" }
  | { readonly status: "queued" }
  | { readonly status: "connecting" }
  | { readonly status: "connected" }
  | { readonly status: "reconnecting"; readonly attempt: number }
  | { readonly status: "failed" }
  | { readonly status: "closed" };

/** A failure of one endpoint: a connect that failed, or a connection closed for good. */
export interface EndpointFailure {
  /** The error the connect rejected with, or the `ConnectionClosedError` the connection closed with. */
  readonly error: Error;
  /** When it happened. */
  readonly at: Date;
}

/** A snapshot of one endpoint's health; a new object at each change. */
export interface EndpointHealth {
  /** The current state. */
  readonly state: EndpointState;
  /** When the endpoint entered `state`. */
  readonly since: Date;
  /** The last failure, kept after the endpoint recovers. */
  readonly lastFailure: EndpointFailure | undefined;
  /** The round trip of the last {@link ExecPool.ping} (a `process/list` call), in milliseconds, if one succeeded. */
  readonly lastRoundTripMs: number | undefined;
  /** How many connections the pool opened to the endpoint (each a new session); resumes do not count. */
  readonly connectionsOpened: number;
}

/** A listener of health changes: the endpoint's name and its new health. */
export type EndpointHealthListener = (name: string, health: EndpointHealth) => void;

/** How an {@link ExecPool} behaves. Every field is optional. */
export interface PoolOptions {
  /**
   * How many connects run at once across the pool (at least 1); further
   * first uses wait (`queued`). Resumes after a drop are the client's and
   * take no slot. Default {@link DEFAULT_MAX_CONCURRENT_CONNECTS}.
   */
  maxConcurrentConnects?: number | undefined;
}

/** One named server of a pool: its connection, opened once for concurrent first uses, and its health. */
class Endpoint {
  /** The endpoint's name in the pool. */
  readonly name: string;
  /** The WebSocket URL to dial. */
  readonly url: string;
  /** How to connect. */
  readonly #options: ConnectOptions;
  /** Told of each health change. */
  readonly #changed: (health: EndpointHealth) => void;
  /** The open (or resuming) connection. */
  #client: ExecClient | undefined;
  /** The connect in flight, which concurrent first uses share. */
  #connecting: Promise<ExecClient> | undefined;
  /** Set once the pool removed the endpoint: no connection opens after it. */
  #removed = false;
  /** The number of the latest connect, so an older connection's events are ignored. */
  #generation = 0;
  /** Stops following the current connection's states. */
  #unsubscribe: (() => void) | undefined;
  /** The health now. */
  #health: EndpointHealth = {
    state: { status: "idle" },
    since: new Date(),
    lastFailure: undefined,
    lastRoundTripMs: undefined,
    connectionsOpened: 0,
  };

  /** An endpoint `name` at `url`, not yet connected; `changed` hears each health change. */
  constructor(name: string, url: string, options: ConnectOptions, changed: (health: EndpointHealth) => void) {
    this.name = name;
    this.url = url;
    this.#options = options;
    this.#changed = changed;
  }

  /** The health now. */
  get health(): EndpointHealth {
    return this.#health;
  }

  /** The open connection, or the connect in flight, or a new connect once one of `slots` is free. */
  client(slots: ConnectSlots): Promise<ExecClient> {
    if (this.#removed) {
      return Promise.reject(new UnknownEndpointError(this.name));
    }
    if (this.#client !== undefined && !this.#client.isClosed) {
      return Promise.resolve(this.#client);
    }
    if (this.#connecting === undefined) {
      this.#connecting = this.#connect(slots).finally(() => {
        this.#connecting = undefined;
      });
    }
    return this.#connecting;
  }

  /** Records a ping's round trip, in milliseconds. */
  recordRoundTrip(milliseconds: number): void {
    this.#update({ lastRoundTripMs: milliseconds });
  }

  /** Marks the endpoint removed and closes its connection (after a connect in flight, if any). */
  async close(): Promise<void> {
    this.#removed = true;
    await this.#connecting?.catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) {
      this.#unsubscribe?.();
      await client.close();
    }
    this.#enter({ status: "closed" });
  }

  /** One connect, as connection number `generation + 1`. */
  async #connect(slots: ConnectSlots): Promise<ExecClient> {
    this.#unsubscribe?.();
    this.#client = undefined;
    this.#generation += 1;
    const generation = this.#generation;
    this.#enter({ status: "queued" });
    await slots.acquire();
    let client: ExecClient;
    try {
      if (this.#removed) {
        throw new UnknownEndpointError(this.name);
      }
      this.#enter({ status: "connecting" });
      client = await ExecClient.connect(this.url, this.#options);
    } catch (error) {
      if (!(error instanceof UnknownEndpointError)) {
        this.#fail(error instanceof Error ? error : new Error(String(error)));
      }
      throw error;
    } finally {
      slots.release();
    }
    if (this.#removed) {
      // Removed while connecting: nobody would close this connection.
      await client.close();
      throw new UnknownEndpointError(this.name);
    }
    this.#client = client;
    this.#update({ connectionsOpened: this.#health.connectionsOpened + 1 });
    this.#unsubscribe = client.onConnectionStateChange((state) => this.#observe(generation, state));
    this.#observe(generation, client.connectionState);
    return client;
  }

  /** Takes in a state of connection `generation`; ignored when a newer connect started since. */
  #observe(generation: number, state: ConnectionState): void {
    if (generation !== this.#generation) {
      return;
    }
    switch (state.status) {
      case "connected":
        this.#enter({ status: "connected" });
        break;
      case "reconnecting":
        this.#enter({ status: "reconnecting", attempt: state.attempt });
        break;
      case "closed":
        // The pool's own close enters `closed` itself after this.
        this.#fail(state.error);
        break;
    }
  }

  /** Records `error` now and enters `failed`. */
  #fail(error: Error): void {
    const at = new Date();
    this.#update({ state: { status: "failed" }, since: at, lastFailure: { error, at } });
  }

  /** Enters `state` now, unless the endpoint is already in it (so `since` keeps the start of the state). */
  #enter(state: EndpointState): void {
    if (JSON.stringify(this.#health.state) === JSON.stringify(state)) {
      return;
    }
    this.#update({ state, since: new Date() });
  }

  /** Applies `change` to the health and tells the listener. */
  #update(change: Partial<EndpointHealth>): void {
    this.#health = { ...this.#health, ...change };
    this.#changed(this.#health);
  }
}

/**
 * Connections to many exec-servers, each under a name.
 *
 * ```ts
 * const pool = new ExecPool();
 * pool.add("sandbox-1", "ws://10.0.0.1:7000", { token: token1 });
 * pool.add("sandbox-2", "ws://10.0.0.2:7000", { token: token2 });
 * const proc = await pool.spawn("sandbox-2", { argv: ["uname", "-a"] }); // connects first
 * console.log(await proc.wait());
 * console.log(pool.health("sandbox-2")?.state); // { status: "connected" }
 * await pool.close();
 * ```
 *
 * Each endpoint has at most one connection (one session). A drop is resumed
 * by the client ({@link ConnectOptions.reconnect}, on by default): the
 * endpoint shows `reconnecting`, its processes keep running, calls wait. A
 * connection closed for good shows `failed` and is replaced by a new
 * connection, to a new session, on the endpoint's next use.
 */
export class ExecPool {
  /** The endpoints by name. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Bounds the connects in flight, so hundreds of first uses at once do not open hundreds of sockets in the same instant. */
  readonly #slots: ConnectSlots;
  /** Who hears of health changes. */
  readonly #listeners = new Set<EndpointHealthListener>();

  /** An empty pool (see {@link PoolOptions}). */
  constructor(options: PoolOptions = {}) {
    this.#slots = new ConnectSlots(options.maxConcurrentConnects ?? DEFAULT_MAX_CONCURRENT_CONNECTS);
  }

  /**
   * Adds endpoint `name` at `url` (`ws://` or `wss://`), connected with
   * `options` on first use. Nothing is dialled now. Throws a `TypeError`
   * when the pool already has an endpoint named `name` (remove it first).
   */
  add(name: string, url: string, options: ConnectOptions = {}): void {
    if (this.#endpoints.has(name)) {
      throw new TypeError(`the pool already has an endpoint named \`${name}\``);
    }
    const endpoint = new Endpoint(name, url, options, (health) => this.#announce(name, health));
    this.#endpoints.set(name, endpoint);
  }

  /** The endpoints' names, sorted. */
  names(): string[] {
    return [...this.#endpoints.keys()].sort();
  }

  /**
   * The client of endpoint `name`, connecting first when it has no open
   * connection (sharing the connect with other callers that come
   * meanwhile). Closing it closes the endpoint's connection for every user.
   * Rejects with an `UnknownEndpointError` for a name the pool does not
   * have, and as {@link ExecClient.connect} does (the endpoint is then
   * `failed`).
   */
  client(name: string): Promise<ExecClient> {
    const endpoint = this.#endpoints.get(name);
    if (endpoint === undefined) {
      return Promise.reject(new UnknownEndpointError(name));
    }
    return endpoint.client(this.#slots);
  }

  /** Starts a process on endpoint `name` (see {@link ExecClient.spawn}), connecting first as {@link client} does. */
  async spawn(name: string, options: SpawnOptions): Promise<RemoteProcess> {
    return await (await this.client(name)).spawn(options);
  }

  /**
   * Measures one round trip to endpoint `name` with a `process/list` call
   * (cheap, and changes nothing), connecting first if needed; resolves
   * with it in milliseconds and records it in the health. Rejects as
   * {@link client} and `request` do.
   */
  async ping(name: string): Promise<number> {
    const client = await this.client(name);
    const started = performance.now();
    await client.request("process/list", {});
    const roundTripMs = performance.now() - started;
    this.#endpoints.get(name)?.recordRoundTrip(roundTripMs);
    return roundTripMs;
  }

  /** The health of endpoint `name`, or `undefined` when the pool does not have it. */
  health(name: string): EndpointHealth | undefined {
    return this.#endpoints.get(name)?.health;
  }

  /** The health of every endpoint, sorted by name. */
  healthAll(): [string, EndpointHealth][] {
    return this.names().flatMap((name) => {
      const health = this.health(name);
      return health === undefined ? [] : [[name, health] as [string, EndpointHealth]];
    });
  }

  /** Calls `listener` with each endpoint's name and new health at each change; returns the function that removes it. */
  onHealthChange(listener: EndpointHealthListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Removes endpoint `name` and closes its connection, if open: clients
   * handed out for it reject their calls with a `ConnectionClosedError`,
   * and the server keeps the session's processes for its TTL. Later uses
   * of the name reject with an `UnknownEndpointError`. Resolves with
   * whether the pool had it.
   */
  async remove(name: string): Promise<boolean> {
    const endpoint = this.#endpoints.get(name);
    if (endpoint === undefined) {
      return false;
    }
    this.#endpoints.delete(name);
    await endpoint.close();
    return true;
  }

  /** Removes every endpoint and closes their connections, all at once. */
  async close(): Promise<void> {
    const endpoints = [...this.#endpoints.values()];
    this.#endpoints.clear();
    await Promise.all(endpoints.map((endpoint) => endpoint.close()));
  }

  /** Tells every listener; one that throws does not stop the others (its error is rethrown in a later task). */
  #announce(name: string, health: EndpointHealth): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(name, health);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}
