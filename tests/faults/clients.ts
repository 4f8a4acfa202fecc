/** Clients that misbehave on purpose: raw sockets that never read, or that pipeline requests. */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** The request head of a GET for an event stream, with extra header lines. */
export function eventsRequest(path: string, headers: Record<string, string> = {}): string {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: hub', 'Accept: text/event-stream'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A connected raw socket whose errors (a reset by the server) are expected, not thrown. */
export async function rawSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Sends the request and never reads a byte of the answer. */
export async function neverReads(url: string, path: string, headers: Record<string, string> = {}): Promise<Socket> {
  const socket = await rawSocket(url);
  socket.pause();
  socket.write(eventsRequest(path, headers));
  return socket;
}
