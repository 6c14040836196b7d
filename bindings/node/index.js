'use strict';
// lwolf-auth for Node.js: liblwolf_auth through koffi. Blocking calls (a cached token is a
// lock and a copy; a fetch or an API request waits on the network): call them from a worker
// thread in a server that must never block its event loop.
//
//   const { Client } = require('lwolf-auth');
//   const client = Client.fromEnv();              // LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET, ...
//   const r = client.get('/v1/transactions', { query: { $top: '10' } });
//   console.log(r.status, r.json());
//
// The library is looked for in LWOLF_AUTH_LIB (an explicit choice wins), then the copy the
// npm package bundles for this platform (prebuilds/<platform>-<arch>/), then target/release
// and target/debug of the source tree this package sits in, then the system's library path.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

const STATUS_NAMES = [
  'LWOLF_OK', 'LWOLF_ERR_INVALID_ARGUMENT', 'LWOLF_ERR_CONFIG', 'LWOLF_ERR_INVALID_CREDENTIALS',
  'LWOLF_ERR_BAD_REQUEST', 'LWOLF_ERR_FORBIDDEN', 'LWOLF_ERR_RATE_LIMITED', 'LWOLF_ERR_SERVER',
  'LWOLF_ERR_TRANSPORT', 'LWOLF_ERR_INVALID_RESPONSE', 'LWOLF_ERR_BUFFER_TOO_SMALL',
  'LWOLF_ERR_INTERNAL', 'LWOLF_ERR_ABORTED', 'LWOLF_ERR_DEADLINE',
];
const Status = Object.freeze(Object.fromEntries(STATUS_NAMES.map((n, i) => [n.replace('LWOLF_', ''), i])));

function libraryPath() {
  if (process.env.LWOLF_AUTH_LIB) return process.env.LWOLF_AUTH_LIB;
  const name = process.platform === 'darwin' ? 'liblwolf_auth.dylib'
    : process.platform === 'win32' ? 'lwolf_auth.dll' : 'liblwolf_auth.so';
  const bundled = path.join(__dirname, 'prebuilds', `${process.platform}-${process.arch}`, name);
  if (fs.existsSync(bundled)) return bundled;
  const root = path.resolve(__dirname, '..', '..');
  for (const profile of ['release', 'debug']) {
    const candidate = path.join(root, 'target', profile, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return name; // the system's library path
}

const lib = koffi.load(libraryPath());
koffi.opaque('lwolf_config');
koffi.opaque('lwolf_client');
koffi.opaque('lwolf_request');
koffi.opaque('lwolf_response');
const TokenInfo = koffi.struct('lwolf_token_info', {
  expires_at_unix: 'int64_t',
  refresh_at_unix: 'int64_t',
  usable_until_unix: 'int64_t',
  lifetime_secs: 'uint64_t',
  fingerprint: koffi.array('char', 16, 'String'),
  token_type: koffi.array('char', 8, 'String'),
});
const Stats = koffi.struct('lwolf_stats', {
  size: 'uint32_t',
  token_requests: 'uint64_t',
  token_failures: 'uint64_t',
  tokens_shared: 'uint64_t',
  forced_renewals: 'uint64_t',
  renewals_declined: 'uint64_t',
  retries: 'uint64_t',
  api_requests: 'uint64_t',
  throttled: 'uint64_t',
  token_expires_at_ms: 'int64_t',
});

const c = {
  configNew: lib.func('uint32_t lwolf_config_new(_Out_ lwolf_config **out)'),
  configFromEnv: lib.func('uint32_t lwolf_config_from_env(_Out_ lwolf_config **out)'),
  configSet: lib.func('uint32_t lwolf_config_set(lwolf_config *cfg, const char *key, const char *value)'),
  configFree: lib.func('void lwolf_config_free(lwolf_config *cfg)'),
  clientNew: lib.func('uint32_t lwolf_client_new(const lwolf_config *cfg, _Out_ lwolf_client **out)'),
  clientForTenant: lib.func('uint32_t lwolf_client_for_tenant(const lwolf_client *c, const char *id, _Out_ lwolf_client **out)'),
  clientForApi: lib.func('uint32_t lwolf_client_for_api(const lwolf_client *c, const char *url, _Out_ lwolf_client **out)'),
  clientTransact: lib.func('uint32_t lwolf_client_transact(const lwolf_client *c, _Out_ lwolf_client **out)'),
  clientStats: lib.func('uint32_t lwolf_client_stats(const lwolf_client *c, _Inout_ lwolf_stats *out)'),
  clientFree: lib.func('void lwolf_client_free(lwolf_client *c)'),
  clientToken: lib.func('uint32_t lwolf_client_token(const lwolf_client *c, _Out_ uint8_t *buf, size_t len, _Out_ size_t *tokenLen)'),
  clientTokenInfo: lib.func('uint32_t lwolf_client_token_info(const lwolf_client *c, _Out_ lwolf_token_info *out)'),
  clientInvalidate: lib.func('uint32_t lwolf_client_invalidate(const lwolf_client *c)'),
  requestNew: lib.func('uint32_t lwolf_request_new(const char *method, const char *path, _Out_ lwolf_request **out)'),
  requestHeader: lib.func('uint32_t lwolf_request_header(lwolf_request *r, const char *name, const char *value)'),
  requestQuery: lib.func('uint32_t lwolf_request_query(lwolf_request *r, const char *name, const char *value)'),
  requestBody: lib.func('uint32_t lwolf_request_body(lwolf_request *r, const uint8_t *body, size_t len, const char *contentType)'),
  requestTimeout: lib.func('uint32_t lwolf_request_timeout_ms(lwolf_request *r, uint64_t ms)'),
  requestFree: lib.func('void lwolf_request_free(lwolf_request *r)'),
  clientSend: lib.func('uint32_t lwolf_client_send(const lwolf_client *c, const lwolf_request *r, _Out_ lwolf_response **out)'),
  responseStatus: lib.func('uint16_t lwolf_response_status(const lwolf_response *r)'),
  responseBody: lib.func('const uint8_t *lwolf_response_body(const lwolf_response *r, _Out_ size_t *len)'),
  responseHeaderCount: lib.func('size_t lwolf_response_header_count(const lwolf_response *r)'),
  responseHeaderAt: lib.func('uint32_t lwolf_response_header_at(const lwolf_response *r, size_t i, _Out_ const char **name, _Out_ const char **value)'),
  responseRequestId: lib.func('const char *lwolf_response_request_id(const lwolf_response *r)'),
  responseFree: lib.func('void lwolf_response_free(lwolf_response *r)'),
  lastError: lib.func('const char *lwolf_last_error_message(void)'),
  lastHttpStatus: lib.func('uint16_t lwolf_last_error_http_status(void)'),
  lastCode: lib.func('const char *lwolf_last_error_code(void)'),
  version: lib.func('const char *lwolf_version(void)'),
};

/** A failure of the library: `status` (a `Status` value), `statusName`, `httpStatus` (what
 * the server answered, if it did) and `error` (its OAuth error code, if any). */
class LwolfError extends Error {
  constructor(status) {
    super(c.lastError() || STATUS_NAMES[status] || `status ${status}`);
    this.name = 'LwolfError';
    this.status = status;
    this.statusName = STATUS_NAMES[status] || 'LWOLF_UNKNOWN_STATUS';
    this.httpStatus = c.lastHttpStatus() || null;
    this.error = c.lastCode() || null;
  }
}

function check(status) {
  if (status !== 0) throw new LwolfError(status);
}

function makeConfig(settings, fromEnv) {
  const out = [null];
  check(fromEnv ? c.configFromEnv(out) : c.configNew(out));
  const cfg = out[0];
  try {
    for (const [key, value] of Object.entries(settings || {})) {
      if (value === undefined || value === null) continue;
      check(c.configSet(cfg, key, typeof value === 'boolean' ? (value ? 'true' : 'false') : String(value)));
    }
    return cfg;
  } catch (e) {
    c.configFree(cfg);
    throw e;
  }
}

/** An API response: `status`, `headers` (lower-case names), `body` (a Buffer), `requestId`
 * (the id the call carried, or null when `request_id_header` is off), `text()`, `json()`,
 * `ok`. */
class Response {
  constructor(handle) {
    this.status = c.responseStatus(handle);
    this.requestId = c.responseRequestId(handle) || null;
    const len = [0];
    const ptr = c.responseBody(handle, len);
    const n = Number(len[0]);
    this.body = n > 0 ? Buffer.from(koffi.decode(ptr, koffi.array('uint8_t', n))) : Buffer.alloc(0);
    this.headers = {};
    const count = Number(c.responseHeaderCount(handle));
    for (let i = 0; i < count; i++) {
      const name = [null];
      const value = [null];
      check(c.responseHeaderAt(handle, i, name, value));
      if (!(name[0] in this.headers)) this.headers[name[0]] = value[0];
    }
  }

  get ok() { return this.status < 400; }
  text() { return this.body.toString('utf8'); }
  json() { return JSON.parse(this.text()); }
}

// One buffer per module instance (each worker thread has its own): a token read allocates
// only the string it returns.
let tokenBuffer = Buffer.alloc(2048);

const finalizer = new FinalizationRegistry((handle) => c.clientFree(handle));

/** A token client: thread-safe, shares its token with `forTenant`/`forApi` clones' pool. */
class Client {
  /** `settings`: the configuration keys (`client_id`, `client_secret`, `token_url`, ...). */
  constructor(settings, { fromEnv = false } = {}) {
    if (settings === Client._handle) return; // internal: wrap a handle
    const cfg = makeConfig(settings, fromEnv);
    const out = [null];
    try {
      check(c.clientNew(cfg, out));
    } finally {
      c.configFree(cfg);
    }
    this._adopt(out[0]);
  }

  /** A client from the LWOLF_* environment variables, `overrides` applied on top. */
  static fromEnv(overrides) {
    return new Client(overrides || {}, { fromEnv: true });
  }

  static _wrap(handle) {
    const client = new Client(Client._handle);
    client._adopt(handle);
    return client;
  }

  _adopt(handle) {
    this._handle = handle;
    finalizer.register(this, handle, this);
  }

  _live() {
    if (!this._handle) throw new LwolfError(Status.ERR_INVALID_ARGUMENT);
    return this._handle;
  }

  /** A usable bearer token (a secret: never log it; log `tokenInfo().fingerprint`). */
  token() {
    for (;;) {
      const len = [0];
      const status = c.clientToken(this._live(), tokenBuffer, tokenBuffer.length, len);
      if (status === Status.ERR_BUFFER_TOO_SMALL) {
        tokenBuffer = Buffer.alloc(Number(len[0]) + 1);
        continue;
      }
      check(status);
      const token = tokenBuffer.toString('latin1', 0, Number(len[0]));
      tokenBuffer.fill(0, 0, Number(len[0])); // no copy of the secret left behind
      return token;
    }
  }

  /** The token's fingerprint, type, times (UNIX seconds) and lifetime. */
  tokenInfo() {
    const info = {};
    check(c.clientTokenInfo(this._live(), info));
    return {
      fingerprint: info.fingerprint,
      tokenType: info.token_type,
      expiresAt: Number(info.expires_at_unix),
      refreshAt: Number(info.refresh_at_unix),
      usableUntil: Number(info.usable_until_unix),
      lifetime: Number(info.lifetime_secs),
    };
  }

  /** Drops the cached token: the next `token()` fetches a new one. */
  invalidate() { check(c.clientInvalidate(this._live())); }

  /** A client for another customer instance: the same settings and pool, its own token. */
  forTenant(lwtClientId) {
    const out = [null];
    check(c.clientForTenant(this._live(), lwtClientId, out));
    return Client._wrap(out[0]);
  }

  /** A client for another API that takes the same tokens (the Transact API). */
  forApi(apiBaseUrl) {
    const out = [null];
    check(c.clientForApi(this._live(), apiBaseUrl, out));
    return Client._wrap(out[0]);
  }

  /** The Transact API's handle: this client's token, pool and caches, `lw-subscription-key`
   * on every call; a 403 is handed back without a renewal (it is about the key). */
  transact() {
    const out = [null];
    check(c.clientTransact(this._live(), out));
    return Client._wrap(out[0]);
  }

  /** What this client and every handle made from it have done: `tokenRequests`,
   * `tokenFailures`, `tokensShared`, `forcedRenewals`, `renewalsDeclined`, `retries`,
   * `apiRequests`, `throttled`, and `tokenExpiresAt` (the cached token's expiry, Unix ms;
   * 0 when none). */
  stats() {
    const raw = { size: koffi.sizeof(Stats) };
    check(c.clientStats(this._live(), raw));
    return {
      tokenRequests: Number(raw.token_requests),
      tokenFailures: Number(raw.token_failures),
      tokensShared: Number(raw.tokens_shared),
      forcedRenewals: Number(raw.forced_renewals),
      renewalsDeclined: Number(raw.renewals_declined),
      retries: Number(raw.retries),
      apiRequests: Number(raw.api_requests),
      throttled: Number(raw.throttled),
      tokenExpiresAt: Number(raw.token_expires_at_ms),
    };
  }

  /** Sends `method` to `path` (under `api_base_url`, or an absolute URL on its origin) with
   * the token. `options`: `headers`, `query` (an object or [name, value] pairs), `body` (a
   * string, Buffer or object sent as JSON), `contentType`, `timeoutMs`. Any HTTP status is
   * a Response; a failure to get one throws LwolfError. */
  request(method, path, options = {}) {
    const out = [null];
    check(c.requestNew(method, path, out));
    const req = out[0];
    try {
      const pairs = (v) => (Array.isArray(v) ? v : Object.entries(v || {}));
      for (const [name, value] of pairs(options.headers)) check(c.requestHeader(req, name, String(value)));
      for (const [name, value] of pairs(options.query)) check(c.requestQuery(req, name, String(value)));
      if (options.body !== undefined && options.body !== null) {
        const isObject = typeof options.body === 'object' && !Buffer.isBuffer(options.body);
        const bytes = Buffer.isBuffer(options.body) ? options.body
          : Buffer.from(isObject ? JSON.stringify(options.body) : String(options.body), 'utf8');
        check(c.requestBody(req, bytes, bytes.length, options.contentType || null));
      }
      if (options.timeoutMs) check(c.requestTimeout(req, options.timeoutMs));
      const resp = [null];
      check(c.clientSend(this._live(), req, resp));
      try {
        return new Response(resp[0]);
      } finally {
        c.responseFree(resp[0]);
      }
    } finally {
      c.requestFree(req);
    }
  }

  get(path, options) { return this.request('GET', path, options); }
  post(path, options) { return this.request('POST', path, options); }
  put(path, options) { return this.request('PUT', path, options); }
  patch(path, options) { return this.request('PATCH', path, options); }
  delete(path, options) { return this.request('DELETE', path, options); }

  /** Frees the client now (otherwise the garbage collector does). */
  close() {
    if (this._handle) {
      finalizer.unregister(this);
      c.clientFree(this._handle);
      this._handle = null;
    }
  }
}
Client._handle = Symbol('handle');

module.exports = {
  Client,
  Response,
  LwolfError,
  Status,
  version: () => c.version(),
  libraryPath,
};
