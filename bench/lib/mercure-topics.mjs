// What the Mercure section's server (servers/hub-mercure.mjs) and runner (mercure.mjs) agree on.

/** The topic every event is published on. */
export const TOPIC = 'https://example.com/bench/1';
/** The URI template half the subscribers select with (RFC 6570, level 1): it matches TOPIC. */
export const TEMPLATE = 'https://example.com/bench/{id}';
/** The HS256 secret of the server's `publisherKey`, for the HTTP POST variant's token. */
export const PUBLISHER_KEY = 'bench-mercure-publisher-key-0123456789abcdef';
/** Where the handler is mounted, as in the hub server. */
export const MERCURE_PATH = '/.well-known/mercure';
