// panva's oidc-provider (a certified OpenID Provider) set up for the client credentials
// grant, for system-tests/tests/interop.rs. Listens on 127.0.0.1, port 0 (any free port).
//
//   node oidc-provider.mjs [--ttl SECONDS]
//
// stdout, one JSON object per line: first {"port":N,"issuer":...,"version":...}, then one
// line per token endpoint outcome ({"event":"grant.success","client_id":...} or
// {"event":"grant.error","error":...}). Nothing secret is ever printed.
//
// The clients (their secrets are the test's; the test passes them to the SDK):
//   interop-post   client_secret_post   secret interop-post-s3cr3t-DO-NOT-LEAK
//   interop-basic  client_secret_basic  secret "interop basic:s3cr3t/+&=%-DO-NOT-LEAK"
//                                       (every character that HTTP Basic must url-encode)
//   interop-jwt-rs256, interop-jwt-ps256
//                  private_key_jwt      the public key of test-support/keys/rsa-pkcs8.pem
//   interop-dpop   client_secret_post   secret interop-dpop-s3cr3t-DO-NOT-LEAK; its tokens
//                                       are DPoP-bound (dpop_bound_access_tokens), and with
//                                       --dpop-nonce every proof needs a nonce
// Access tokens for the resource https://api.lwolf.com are JWTs (RFC 9068) living --ttl s.
import { createServer } from 'node:http';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import Provider from 'oidc-provider';

const require = createRequire(import.meta.url);
const { version } = require('oidc-provider/package.json');

const args = process.argv.slice(2);
const ttlArg = args.indexOf('--ttl');
const ttl = ttlArg >= 0 ? Number(args[ttlArg + 1]) : 3600;
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error('--ttl must be a positive integer');
  process.exit(2);
}

const dpopNonce = args.includes('--dpop-nonce');

const RESOURCE = 'https://api.lwolf.com';
// The test key's public half, registered for private_key_jwt.
const clientKey = createPublicKey(
  readFileSync(new URL('../../test-support/keys/rsa-public.pem', import.meta.url)),
).export({ format: 'jwk' });
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ format: 'jwk' });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'interop-post',
        client_secret: 'interop-post-s3cr3t-DO-NOT-LEAK',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'interop-basic',
        client_secret: 'interop basic:s3cr3t/+&=%-DO-NOT-LEAK',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      ...['RS256', 'PS256'].map((alg) => ({
        client_id: `interop-jwt-${alg.toLowerCase()}`,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: alg,
        jwks: { keys: [{ ...clientKey, use: 'sig', kid: 'vault-key-1' }] },
      })),
      {
        client_id: 'interop-dpop',
        client_secret: 'interop-dpop-s3cr3t-DO-NOT-LEAK',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
        dpop_bound_access_tokens: true,
      },
    ],
    jwks: { keys: [{ ...signingKey, alg: 'RS256', use: 'sig', kid: 'interop' }] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      dPoP: {
        enabled: true,
        ...(dpopNonce ? { nonceSecret: randomBytes(32), requireNonce: () => true } : {}),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'transactions:read',
            audience: RESOURCE,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: { ClientCredentials: ttl },
  });
  provider.on('grant.success', (ctx) => {
    say({ event: 'grant.success', client_id: ctx.oidc.client?.clientId ?? null });
  });
  provider.on('grant.error', (ctx, err) => {
    say({ event: 'grant.error', error: err.error ?? String(err), status: err.statusCode ?? null });
  });
  // Keep the provider's own error logging off stdout (it is the test's channel).
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  say({ port, issuer, version, token_endpoint: `${issuer}/token`, ttl });
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The test holds our stdin; when it goes away (test ended or was killed), so do we.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
