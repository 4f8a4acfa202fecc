/**
 * One instance of Redis presence in a process of its own, for the tests that kill it: adds COUNT
 * entries (ids `<PREFIX>-<n>`, group GROUP), then reports its instance id over IPC. Closes
 * gracefully and exits when its parent disconnects.
 * Env: REDIS_URL, KEY, HEARTBEAT_MS, COUNT, PREFIX, GROUP.
 */
import { redisPresence } from '../../src/backplanes/redis-presence.js';

const presence = redisPresence({ url: process.env.REDIS_URL!, key: process.env.KEY!, heartbeatMs: Number(process.env.HEARTBEAT_MS ?? 5000) });
const count = Number(process.env.COUNT ?? 1);
const prefix = process.env.PREFIX ?? 'child';
const group = process.env.GROUP ?? 'child';
for (let n = 0; n < count; n++) presence.add({ id: `${prefix}-${n}`, group, data: { n, pid: process.pid } });
process.send!({ instance: presence.instance });

process.on('disconnect', () => {
  void presence.close().then(() => process.exit(0));
});
