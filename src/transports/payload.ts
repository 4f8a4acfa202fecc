/**
 * Bytes written to many clients: serialised once, and framed once as an HTTP/1.1 chunk, so a
 * delivery is a single socket write of shared memory (no per-socket encoding or framing).
 */
export class Payload {
  #framed: Uint8Array | undefined;

  constructor(readonly bytes: Uint8Array) {}

  /** `<size in hex>\r\n<bytes>\r\n`: the chunked transfer-coding of these bytes, built on first use. */
  get framed(): Uint8Array {
    return (this.#framed ??= frame(this.bytes));
  }
}

const CRLF = 0x0d0a;

function frame(bytes: Uint8Array): Uint8Array {
  const size = bytes.byteLength.toString(16);
  const framed = new Uint8Array(size.length + 2 + bytes.byteLength + 2);
  for (let i = 0; i < size.length; i++) framed[i] = size.charCodeAt(i);
  let at = size.length;
  framed[at++] = CRLF >> 8;
  framed[at++] = CRLF & 0xff;
  framed.set(bytes, at);
  at += bytes.byteLength;
  framed[at++] = CRLF >> 8;
  framed[at] = CRLF & 0xff;
  return framed;
}
