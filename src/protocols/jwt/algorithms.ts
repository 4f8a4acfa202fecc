/**
 * The JWS algorithms a configured key may name: apart from the key code so that the bin can
 * check its flags without loading jose.
 */

/** HMAC algorithms: a shared secret. */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** Asymmetric algorithms: a public key, a certificate or a JWKS. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
/** Every algorithm a configured key may name. */
export const ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS];
