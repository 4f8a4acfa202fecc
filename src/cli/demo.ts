import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultOnConnect, lastEventIdOf, serveSse, type SseStream } from '../index.js';
import { demoPage } from './demo-page.js';

export interface DemoOptions {
  /** Milliseconds between events. Default 2 000. */
  interval?: number;
  /** Events in all. Default 100. */
  count?: number;
}

export interface DemoServer extends Server {
  /**
   * Ends every open stream after telling its browser to come back in `retry` ms: what a restart
   * should do, rather than cutting streams (the page would show an error at once).
   */
  endStreams(retry: number): Promise<void>;
}

/** The demo app: a page at `/` that lists the events streamed at `/events`. */
export function createDemoServer({ interval = 2000, count = 100 }: DemoOptions = {}): DemoServer {
  const open = new Set<SseStream>();
  const events = serveSse(
    async (_request, stream) => {
      open.add(stream);
      try {
        // A reconnecting browser sends the last id it saw: carry on counting from there.
        for (let n = Number(stream.lastEventId ?? 0) + 1; n <= count; n++) {
          await sleep(interval, undefined, { signal: stream.signal });
          await stream.send({ event: 'my-custom-event', id: n, data: `Hello World! ${n}` });
        }
      } finally {
        open.delete(stream);
      }
    },
    {
      // Once all events were seen, 204 tells the browser to stop reconnecting.
      onConnect: (request) =>
        Number(lastEventIdOf(request) ?? 0) >= count ? { status: 204 } : defaultOnConnect(request),
    },
  );

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/events') return events(req, res);
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return void res.end(demoPage);
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found');
  }) as DemoServer;
  server.endStreams = async (retry) => {
    await Promise.all(
      [...open].map(async (stream) => {
        await stream.send({ retry });
        stream.close();
      }),
    );
  };
  return server;
}
