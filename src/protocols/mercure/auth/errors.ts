/**
 * Refusals as RFC 6750 §3 words them, which draft-08 adopts (section Error Responses): 401 with a
 * bare `Bearer` challenge when a token is needed and none came, 401 `invalid_token` for any token
 * that fails (the same answer whatever failed: why it failed goes to the log, never to the
 * client), 403 `insufficient_scope` for a valid token that does not allow the operation, 400
 * `invalid_request` for a malformed request. Draft-07 only asks for a 403 on a forbidden
 * operation; these answers satisfy it too.
 */

/** RFC 6750 error codes. */
export type BearerError = 'invalid_token' | 'insufficient_scope' | 'invalid_request';

/** Why a request is refused: no token (`missing`), or one of RFC 6750's codes. */
export type RefusalKind = 'missing' | BearerError;

/** An answer ready to send. */
export interface AuthAnswer {
  readonly status: 400 | 401 | 403;
  readonly headers: { readonly 'www-authenticate': string; readonly 'content-type': 'text/plain; charset=utf-8' };
  /** One short line, ending with a newline. */
  readonly body: string;
}

export interface RefusalOptions {
  /**
   * For `insufficient_scope` and `invalid_request`: what to tell the client (which topic, which
   * parameter). Ignored for `invalid_token`, whose body never says why the token failed.
   */
  message?: string;
  /**
   * For `invalid_token`: a fact about the hub, not about the token, that the client needs (the
   * hub cannot take draft-08 tokens until its audience is configured). Appended to the body.
   */
  hubHint?: string;
  /** RFC 9728 `resource_metadata`: the URL of the hub's protected resource metadata (draft-08 SHOULD). */
  resourceMetadata?: string;
  /** A `realm` for the challenge. */
  realm?: string;
}

/** Where the hub's log lines about tokens go; reasons for refusals are at `debug`, configuration trouble at `warn`. */
export type { AuthLogger } from '../../jwt/keys.js';

const STATUS: Record<RefusalKind, 400 | 401 | 403> = { missing: 401, invalid_token: 401, insufficient_scope: 403, invalid_request: 400 };

const BODY: Record<RefusalKind, string> = {
  missing: 'an access token is required',
  invalid_token: 'the access token is not valid',
  insufficient_scope: 'the access token does not allow this operation',
  invalid_request: 'the request is malformed',
};

/** The text `invalid_token` answers carry: the same for every failure. */
export const INVALID_TOKEN_BODY = `${BODY.invalid_token}\n`;

/** The answer refusing a request. */
export function authRefusal(kind: RefusalKind, options: RefusalOptions = {}): AuthAnswer {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm=${quoted(options.realm)}`);
  // RFC 6750 §3.1: a request without any token gets no error code.
  if (kind !== 'missing') params.push(`error="${kind}"`);
  if (options.resourceMetadata !== undefined) params.push(`resource_metadata=${quoted(options.resourceMetadata)}`);
  let custom = kind === 'insufficient_scope' || kind === 'invalid_request' ? options.message : undefined;
  if (kind === 'invalid_token' && options.hubHint !== undefined) custom = `${BODY.invalid_token}: ${options.hubHint}`;
  return {
    status: STATUS[kind],
    headers: { 'www-authenticate': params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`, 'content-type': 'text/plain; charset=utf-8' },
    body: `${oneLine(custom ?? BODY[kind])}\n`,
  };
}

/** An RFC 9110 quoted-string: quotes and backslashes escaped, controls dropped. */
function quoted(value: string): string {
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/["\\]/g, '\\$&')}"`;
}

function oneLine(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  return flat.length <= 300 ? flat : `${flat.slice(0, 299)}…`;
}
