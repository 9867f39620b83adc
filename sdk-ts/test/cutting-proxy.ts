/**
 * A TCP proxy for the tests that cut connections: it forwards bytes both
 * ways between a client and a WebSocket server, and resets both sides
 * abruptly (`resetAndDestroy`: a TCP RST, no close frame) after every
 * `cutEveryBytes` bytes from the server, or when the server's bytes contain
 * a marker, or on demand. Bytes the server had sent when the cut came are
 * lost in flight, as on a real network. It can also hold new connections
 * back (the network is down) until released.
 *
 * @module
 */

import { type Socket, createConnection, createServer } from "node:net";

/** How {@link startCuttingProxy} cuts. */
export interface CuttingOptions {
  /** Cut each connection after this many bytes from the server; default: never. */
  readonly cutEveryBytes?: number;
}

/** A running proxy. */
export interface CuttingProxy {
  /** The `ws://127.0.0.1:PORT` URL clients connect to. */
  readonly url: string;
  /** How many connections were cut so far. */
  readonly cuts: number;
  /** Cuts every open connection now. */
  cutNow(): void;
  /** Holds new connections (accepted, not forwarded) until {@link release}. */
  holdNew(): void;
  /** Forwards the held connections, and new ones again. */
  release(): void;
  /**
   * Cuts the connection whose server sends `marker` next, before that data
   * is forwarded; resolves when it is cut. Once.
   */
  cutAtMarker(marker: string): Promise<void>;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
}

/** One client connection and its upstream. */
interface Pair {
  /** The client's side. */
  readonly client: Socket;
  /** The server's side. */
  readonly upstream: Socket;
  /** Server bytes forwarded on this connection. */
  forwarded: number;
  /** Cut already. */
  cut: boolean;
  /** The end of the server's previous data, so a marker split across two reads is found. */
  tail: string;
}

/** Starts a proxy to the WebSocket server at `upstreamUrl` (`ws://HOST:PORT`). */
export async function startCuttingProxy(upstreamUrl: string, options: CuttingOptions = {}): Promise<CuttingProxy> {
  const target = new URL(upstreamUrl);
  const cutEveryBytes = options.cutEveryBytes ?? Number.POSITIVE_INFINITY;
  const pairs = new Set<Pair>();
  let cuts = 0;
  let marker: { readonly text: string; readonly done: () => void } | undefined;
  let held: (() => void)[] | undefined;

  const cut = (pair: Pair): void => {
    if (pair.cut) {
      return;
    }
    pair.cut = true;
    cuts += 1;
    pairs.delete(pair);
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  };

  const forward = (client: Socket): void => {
    client.resume();
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream, forwarded: 0, cut: false, tail: "" };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // Resets are the point of this proxy; they end the pair like a close.
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.on("data", (data: Buffer) => {
      if (!upstream.write(data)) {
        client.pause();
        upstream.once("drain", () => client.resume());
      }
    });
    upstream.on("data", (data: Buffer) => {
      if (pair.cut) {
        return;
      }
      if (marker !== undefined) {
        const text = data.toString("latin1");
        if ((pair.tail + text).includes(marker.text)) {
          const done = marker.done;
          marker = undefined;
          cut(pair);
          done();
          return;
        }
        pair.tail = text.slice(-64);
      }
      const room = cutEveryBytes - pair.forwarded;
      const part = data.byteLength > room ? data.subarray(0, room) : data;
      pair.forwarded += part.byteLength;
      const flowing = client.write(part);
      if (pair.forwarded >= cutEveryBytes) {
        cut(pair);
      } else if (!flowing) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    });
  };

  const server = createServer((client) => {
    client.setNoDelay(true);
    if (held === undefined) {
      forward(client);
      return;
    }
    // The network is down: nothing passes until it is released.
    client.pause();
    client.on("error", () => client.destroy());
    held.push(() => forward(client));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || address === null) {
    throw new Error("the cutting proxy has no address");
  }
  return {
    url: `ws://127.0.0.1:${address.port}`,
    get cuts() {
      return cuts;
    },
    cutNow() {
      for (const pair of [...pairs]) {
        cut(pair);
      }
    },
    holdNew() {
      held ??= [];
    },
    release() {
      const waiting = held ?? [];
      held = undefined;
      for (const start of waiting) {
        start();
      }
    },
    cutAtMarker(text: string) {
      return new Promise<void>((resolve) => {
        marker = { text, done: resolve };
      });
    },
    async close() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
