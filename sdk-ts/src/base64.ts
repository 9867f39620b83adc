/**
 * Bytes to and from the wire's base64 (RFC 4648 section 4, with padding).
 * Node's `Buffer` when there is one (fast, and no intermediate strings);
 * `atob`/`btoa` otherwise, so the package also runs in a browser.
 *
 * @module
 */

/** The part of Node's `Buffer` this file uses, found at run time. */
interface BufferLike {
  from(data: string, encoding: "base64" | "utf8"): Uint8Array & { toString(encoding: "base64"): string };
  from(data: ArrayBufferLike, byteOffset: number, length: number): Uint8Array & { toString(encoding: "base64"): string };
}

/** Node's `Buffer`, or `undefined` in a browser. */
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

/** Characters of one `String.fromCharCode` call in the browser path, below engines' argument limits. */
const CHARS_PER_CALL = 0x8000;

/** Decodes base64 into bytes. The result is a plain `Uint8Array` that owns its memory. */
export function decodeBase64(text: string): Uint8Array {
  if (NodeBuffer !== undefined) {
    const buffer = NodeBuffer.from(text, "base64");
    // Small Buffers are slices of a shared pool; copy those so a chunk's
    // `.buffer` holds nothing but its own bytes.
    return buffer.byteLength === buffer.buffer.byteLength
      ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
      : Uint8Array.prototype.slice.call(buffer);
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) {
    bytes[index] = binary.charCodeAt(index);
  }
  return bytes;
}

/** Encodes bytes as base64. */
export function encodeBase64(bytes: Uint8Array): string {
  if (NodeBuffer !== undefined) {
    return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  }
  let binary = "";
  for (let start = 0; start < bytes.length; start += CHARS_PER_CALL) {
    binary += String.fromCharCode(...bytes.subarray(start, start + CHARS_PER_CALL));
  }
  return btoa(binary);
}

/** The UTF-8 bytes of `data`, or `data` itself when it already is bytes. */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}
