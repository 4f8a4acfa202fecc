/**
 * What a subscriber wants from a hub, beyond a list of topic names: families of topics (a
 * protocol's patterns: URI templates, URL patterns, `*`), and the right to receive private
 * events. The hub knows nothing of any pattern language: a protocol compiles its selectors into
 * {@link TopicMatcher}s, and the hub looks exact names up and asks matchers about the rest.
 */

/** A family of topics. */
export interface TopicMatcher {
  /**
   * The same text for the same family: subscribers whose matchers have equal keys share match
   * results and the bytes written to them.
   */
  readonly key: string;
  /** Whether `topic` belongs to the family. Called once per (matcher, topic) at most, often: keep it pure. */
  matches(topic: string): boolean;
}

/**
 * Which private events a subscriber may receive: those with a topic this allows. Events published
 * as private reach nobody else, and a subscriber without one receives public events only.
 */
export interface PrivateAccess {
  /** Equal keys, equal rights: subscribers share bytes only when their keys are equal. */
  readonly key: string;
  allows(topic: string): boolean;
}

/** A subscription: exact topic names, matchers, and what private events it may see. */
export interface Interest {
  readonly topics: readonly string[];
  readonly matchers?: readonly TopicMatcher[];
  readonly access?: PrivateAccess;
}
