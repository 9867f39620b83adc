/**
 * {@link handshake}: `initialize` and `initialized` on a connection, for the
 * first socket and for each resume.
 *
 * @module
 */

import type { Connection } from "./connection.js";
import { ConnectError, ProtocolError } from "./errors.js";
import type { InitializeResponse } from "./generated/InitializeResponse.js";
import { PROTOCOL_VERSION } from "./generated/methods.js";

/** What `initialize` says about the client. */
export interface HandshakeParams {
  /** `clientName`, for the server's logs. */
  readonly clientName: string;
  /** `clientVersion`, when known. */
  readonly clientVersion: string | undefined;
  /** Whether the client acknowledges output with `process/ack` (it does whenever it reconnects). */
  readonly acknowledgeOutput: boolean;
  /** The session to resume, after a drop. */
  readonly resumeSessionId?: string | undefined;
  /** Whether to ask for binary output frames (`binaryOutput`; the transport is always WebSocket). */
  readonly binaryOutput: boolean;
}

/**
 * Sends `initialize` (as an internal call with `internal`, for a resume),
 * checks the protocol version, sets the server's message limit, sends
 * `initialized`, and resolves with the response.
 *
 * Rejects with a {@link ConnectError} for `url` when `deadline` aborts
 * first; an `ExecError` when the server refuses (`unknownSession` for a
 * session it no longer has); a {@link ProtocolError} when it speaks another
 * protocol version; the connection's error when it closes or drops first.
 */
export async function handshake(
  connection: Connection,
  params: HandshakeParams,
  url: string,
  deadline: AbortSignal,
  internal: boolean,
): Promise<InitializeResponse> {
  const initialize = connection.call(
    "initialize",
    {
      clientName: params.clientName,
      ...(params.clientVersion === undefined ? {} : { clientVersion: params.clientVersion }),
      ...(params.acknowledgeOutput ? { acknowledgeOutput: true } : {}),
      ...(params.binaryOutput ? { binaryOutput: true } : {}),
      ...(params.resumeSessionId === undefined ? {} : { resumeSessionId: params.resumeSessionId }),
    },
    { internal },
  );
  // Whichever loses the race below still settles; its rejection is expected.
  initialize.catch(() => {});
  let onAbort: (() => void) | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    onAbort = () => reject(new ConnectError(url, "no initialize response in time", undefined, { cause: deadline.reason }));
    if (deadline.aborted) {
      onAbort();
    } else {
      deadline.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    const response = await Promise.race([initialize, timedOut]);
    if (response.protocolVersion !== PROTOCOL_VERSION) {
      throw new ProtocolError(`the server speaks ${response.protocolVersion}, this client ${PROTOCOL_VERSION}`);
    }
    connection.setMaxMessageBytes(response.limits.maxMessageBytes);
    connection.notify("initialized", {}, internal);
    return response;
  } finally {
    if (onAbort !== undefined) {
      deadline.removeEventListener("abort", onAbort);
    }
  }
}
