// oauth2-mock-server (axa-group), for tests/interop.rs. Listens on 127.0.0.1, port 0.
//
//   node oauth2-mock-server.cjs [--ttl SECONDS]
//
// stdout, one JSON object per line: first {"port":N,"issuer":...,"version":...}, then one
// {"event":"token","grant_type":...,"client_id":...,"content_type":...} line per token
// issued (from the server's own beforeResponse hook). Nothing secret is ever printed.
//
// Without --ttl the server is left exactly as it ships (tokens of 3600 s). With --ttl, its
// documented hooks set the JWT `exp` (beforeTokenSigning) and `expires_in` (beforeResponse)
// to that many seconds, the way its README shows for custom lifetimes.
const { OAuth2Server } = require('oauth2-mock-server');
const { version } = require('oauth2-mock-server/package.json');

const args = process.argv.slice(2);
const ttlArg = args.indexOf('--ttl');
const ttl = ttlArg >= 0 ? Number(args[ttlArg + 1]) : null;
if (ttl !== null && (!Number.isInteger(ttl) || ttl <= 0)) {
  console.error('--ttl must be a positive integer');
  process.exit(2);
}
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

(async () => {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  if (ttl !== null) {
    server.service.on('beforeTokenSigning', (token) => {
      token.payload.exp = token.payload.iat + ttl;
    });
  }
  server.service.on('beforeResponse', (response, req) => {
    if (ttl !== null) {
      response.body.expires_in = ttl;
    }
    say({
      event: 'token',
      status: response.statusCode,
      grant_type: req.body?.grant_type ?? null,
      client_id: req.body?.client_id ?? null,
      content_type: req.get('content-type') ?? null,
    });
  });
  await server.start(0, '127.0.0.1');
  const { port } = server.address();
  say({ port, issuer: server.issuer.url, version, token_endpoint: `${server.issuer.url}/token`, ttl });

  const stop = () => server.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
