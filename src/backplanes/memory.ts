import type { Backplane, LogListener } from './backplane.js';

let lastEpoch = 0;

/**
 * The default backplane: the log is this process. Ids are `<epoch>-<sequence>`; the epoch (start
 * time, unique per hub in a process) tells this log's ids from those of a restarted process,
 * which it cannot replay. Appends are delivered synchronously, so a single process pays nothing
 * for the abstraction.
 */
export function memoryBackplane(): Backplane {
  const epoch = (lastEpoch = Math.max(Date.now(), lastEpoch + 1));
  let seq = 0;
  let listener: LogListener | undefined;
  return {
    connected: true,
    origin: `${epoch}-0`,
    open(target) {
      listener = target;
    },
    append(topics, body, meta) {
      if (listener === undefined) return Promise.reject(new Error('serve-sse: the memory backplane is not open'));
      const id = `${epoch}-${++seq}`;
      listener.receive({ id, topics, body, time: Date.now(), ...meta });
      return Promise.resolve(id);
    },
    close() {
      listener = undefined;
      return Promise.resolve();
    },
  };
}
