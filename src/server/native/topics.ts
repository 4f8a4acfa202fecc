/**
 * Topic names, as the hub server accepts them from subscribers and publishers: 1 to 256
 * characters, no whitespace and no control characters (they would be invisible in logs and
 * URLs), and not `*`, which tokens use to mean "every topic".
 */

export const MAX_TOPIC_LENGTH = 256;
/** Topics per request: one subscription or publication names at most this many. */
export const MAX_TOPICS = 100;
export const WILDCARD = '*';

// \s covers Unicode spaces; \p{Cc} the C0 and C1 controls and DEL.
const FORBIDDEN = /[\s\p{Cc}]/u;

/** Why a list of topic names is refused, in a sentence for a 400 body; undefined if it is fine. */
export function topicsProblem(topics: readonly string[]): string | undefined {
  if (topics.length === 0) return 'no topic given';
  if (topics.length > MAX_TOPICS) return `${topics.length} topics given; at most ${MAX_TOPICS} per request`;
  for (const topic of topics) {
    const problem = topicProblem(topic);
    if (problem !== undefined) return `invalid topic ${quote(topic)}: ${problem}`;
  }
  return undefined;
}

function topicProblem(topic: string): string | undefined {
  if (topic === '') return 'a topic name must not be empty';
  if (topic.length > MAX_TOPIC_LENGTH) return `a topic name has at most ${MAX_TOPIC_LENGTH} characters`;
  if (topic === WILDCARD) return '"*" is reserved: in a token it means every topic';
  if (FORBIDDEN.test(topic)) return 'a topic name must not contain whitespace or control characters';
  return undefined;
}

/** A name for a message: quoted, and cut short, since it comes from the client. */
export function quote(topic: string): string {
  return JSON.stringify(topic.length > 64 ? `${topic.slice(0, 64)}…` : topic);
}
