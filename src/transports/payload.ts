/**
 * Bytes written to many clients: serialised once, and framed once as an HTTP/1.1 chunk, so a
 * delivery is a single socket write of shared memory (no per-socket encoding or framing).
 */
export class Payload {
  /**
   * `<size in hex>\r\n<bytes>\r\n`, the chunked transfer-coding of `bytes`, once a Node sink has
   * written it (see `framedChunk` in node.ts, which builds it as a Buffer: a plain Uint8Array
   * would be wrapped in a new Buffer by every `socket.write`). Other sinks never frame.
   */
  framed: Uint8Array | undefined = undefined;
  /**
   * `framed` as a latin1 string (one character per byte), once a Node sink has sent it as the first
   * chunk of a response: node:http joins a string to the response head, so both leave in one write.
   */
  framedHead: string | undefined = undefined;

  constructor(readonly bytes: Uint8Array) {}
}
