'use strict';
// lwolf-auth for Node.js: liblwolf_auth through koffi. The calls that may wait on the network
// (a token fetch, an API request) return Promises and run off the event loop, on call threads
// of their own; their `…Sync` forms (`tokenSync()`, `getSync()`, ...) block the thread that
// calls them (`tokenSync()` reads a cached token in under a microsecond; it blocks while one is
// fetched).
//
//   const { Client } = require('lwolf-auth');
//   const client = Client.fromEnv();              // LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET, ...
//   const r = await client.get('/v1/transactions', { query: { $top: '10' } });
//   console.log(r.status, r.json());
//
// The library is looked for in LWOLF_AUTH_LIB (an explicit choice wins), then the copy the
// npm package bundles for this platform (prebuilds/<platform>-<arch>/), then target/release
// and target/debug of the source tree this package sits in, then the system's library path.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');
const threads = require('node:worker_threads');

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

const LIBRARY = libraryPath();
const lib = koffi.load(LIBRARY);
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
  // `details`: what the thread that made the call read of its last error (an asynchronous
  // call's error is read on its call thread: the library keeps it per thread); without
  // them, this thread's last error.
  constructor(status, details) {
    const d = details || { message: c.lastError(), httpStatus: c.lastHttpStatus(), error: c.lastCode() };
    super(d.message || STATUS_NAMES[status] || `status ${status}`);
    this.name = 'LwolfError';
    this.status = status;
    this.statusName = STATUS_NAMES[status] || 'LWOLF_UNKNOWN_STATUS';
    this.httpStatus = d.httpStatus || null;
    this.error = d.error || null;
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

// The calls that may wait on the network, on a client handle: run as they are by the `…Sync`
// methods, and on a call thread by the others. Each reads the last error on the thread that
// made the call (`check`), so a failure is described as the library described it.
const blocking = {
  token(handle) {
    for (;;) {
      const len = [0];
      const status = c.clientToken(handle, tokenBuffer, tokenBuffer.length, len);
      if (status === Status.ERR_BUFFER_TOO_SMALL) {
        tokenBuffer = Buffer.alloc(Number(len[0]) + 1);
        continue;
      }
      check(status);
      const token = tokenBuffer.toString('latin1', 0, Number(len[0]));
      tokenBuffer.fill(0, 0, Number(len[0])); // no copy of the secret left behind
      return token;
    }
  },

  tokenInfo(handle) {
    const info = {};
    check(c.clientTokenInfo(handle, info));
    return {
      fingerprint: info.fingerprint,
      tokenType: info.token_type,
      expiresAt: Number(info.expires_at_unix),
      refreshAt: Number(info.refresh_at_unix),
      usableUntil: Number(info.usable_until_unix),
      lifetime: Number(info.lifetime_secs),
    };
  },

  /** Sends a built request; the response's handle (the caller reads and frees it). */
  send(handle, req) {
    const resp = [null];
    check(c.clientSend(handle, req, resp));
    return resp[0];
  },
};

// The asynchronous forms run `blocking` calls on call threads: worker_threads of this
// process, each with this module loaded (the same library, and koffi), taking one call at a
// time. Not koffi's own `fn.async()`: it runs a call on a thread of libuv's pool and hands
// the result back on the event loop, where the library's last error (kept per thread) is no
// longer the call's, so a failure could only be told by its status. A call thread runs the
// call and reads its error on the same thread, and the promise rejects with the LwolfError
// the `…Sync` form throws. Handles go to it as numbers (koffi's pointers are BigInts): the
// client stays open until its calls have settled (`close()` waits for them to free it),
// and a request is freed after its send settles.
const CALL_THREAD = 'lwolf-auth call thread';
const calls = { threads: [], queue: [], max: 4 };

function startCallThread() {
  const worker = new threads.Worker(`require(${JSON.stringify(__filename)});`, {
    eval: true,
    // The library this thread loaded, whatever the environment says by then.
    env: { ...process.env, LWOLF_AUTH_LIB: LIBRARY },
    workerData: { [CALL_THREAD]: true },
  });
  const t = { worker, current: null };
  const fail = (error) => {
    calls.threads = calls.threads.filter((other) => other !== t);
    if (t.current) t.current.reject(error);
    t.current = null;
    pump();
  };
  worker.on('message', (reply) => {
    const { resolve, reject } = t.current;
    t.current = null;
    if ('value' in reply) resolve(reply.value);
    else if (reply.lwolf) reject(new LwolfError(reply.lwolf.status, reply.lwolf));
    else reject(new Error(`lwolf-auth call thread: ${reply.failure}`));
    pump();
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`lwolf-auth call thread exited (${code})`)));
  calls.threads.push(t);
  return t;
}

function pump() {
  while (calls.queue.length > 0) {
    let t = calls.threads.find((x) => x.current === null);
    if (!t && calls.threads.length < calls.max) t = startCallThread();
    if (!t) return;
    t.current = calls.queue.shift();
    t.worker.ref(); // a call in flight keeps the process alive, as any pending I/O does
    t.worker.postMessage(t.current.message);
  }
  for (const t of calls.threads) if (t.current === null) t.worker.unref();
}

function offLoop(op, handle, args) {
  return new Promise((resolve, reject) => {
    calls.queue.push({ message: { op, handle, args }, resolve, reject });
    pump();
  });
}

/** How many calls may wait on the network at once off the event loop (call threads, each
 * started when first needed); more wait their turn. Default 4, as libuv's pool. */
function setAsyncThreads(n) {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError('setAsyncThreads: an integer from 1 to 256');
  calls.max = n;
  pump();
}

// On a call thread: run each call as it comes, and answer with its value or its error.
function serveCalls(port) {
  port.on('message', ({ op, handle, args }) => {
    let reply;
    try {
      reply = { value: blocking[op](handle, ...args) };
    } catch (e) {
      reply = e instanceof LwolfError
        ? { lwolf: { status: e.status, message: e.message, httpStatus: e.httpStatus, error: e.error } }
        : { failure: String((e && e.stack) || e) };
    }
    port.postMessage(reply);
  });
}

const finalizer = new FinalizationRegistry((handle) => c.clientFree(handle));

/** A token client: thread-safe, shares its token with `forTenant`/`forApi` clones' pool.
 * Calls that may wait on the network return Promises and run off the event loop (`token()`,
 * `tokenInfo()`, `request()`, `get()`, ...); their `…Sync` forms block. */
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
    this._calls = 0; // asynchronous calls not settled yet
    this._freeWhenSettled = null; // the handle close() left to the last of them
    finalizer.register(this, handle, this);
  }

  _live() {
    if (!this._handle) {
      throw new LwolfError(Status.ERR_INVALID_ARGUMENT, { message: 'lwolf-auth: the client is closed' });
    }
    return this._handle;
  }

  // Runs a blocking call off the event loop; the handle stays valid until it settles.
  async _offLoop(op, ...args) {
    const handle = this._live();
    this._calls += 1;
    try {
      return await offLoop(op, handle, args);
    } finally {
      this._calls -= 1;
      if (this._calls === 0 && this._freeWhenSettled) {
        c.clientFree(this._freeWhenSettled);
        this._freeWhenSettled = null;
      }
    }
  }

  /** A usable bearer token (a secret: never log it; log `(await tokenInfo()).fingerprint`),
   * fetched off the event loop when none is cached. */
  token() { return this._offLoop('token'); }

  /** `token()`, blocking the thread until a token is had. */
  tokenSync() { return blocking.token(this._live()); }

  /** The token's fingerprint, type, times (UNIX seconds) and lifetime (fetching a token off
   * the event loop if none is cached). */
  tokenInfo() { return this._offLoop('tokenInfo'); }

  /** `tokenInfo()`, blocking. */
  tokenInfoSync() { return blocking.tokenInfo(this._live()); }

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

  // A request handle built from the arguments of `request()` (the caller frees it).
  static _build(method, path, options) {
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
        check(c.requestBody(req, bytes, bytes.length, options.contentType || null)); // copied
      }
      if (options.timeoutMs) check(c.requestTimeout(req, options.timeoutMs));
      return req;
    } catch (e) {
      c.requestFree(req);
      throw e;
    }
  }

  static _take(resp) {
    try {
      return new Response(resp);
    } finally {
      c.responseFree(resp);
    }
  }

  /** Sends `method` to `path` (under `api_base_url`, or an absolute URL on its origin) with
   * the token, off the event loop. `options`: `headers`, `query` (an object or [name, value]
   * pairs), `body` (a string, Buffer or object sent as JSON), `contentType`, `timeoutMs`.
   * Resolves to a Response for any HTTP status; a failure to get one rejects with
   * LwolfError. */
  async request(method, path, options = {}) {
    this._live(); // a closed client: rejected before anything is built
    const req = Client._build(method, path, options);
    try {
      return Client._take(await this._offLoop('send', req));
    } finally {
      c.requestFree(req); // the send has settled: no thread reads it any more
    }
  }

  /** `request()`, blocking: returns the Response, throws LwolfError. */
  requestSync(method, path, options = {}) {
    const handle = this._live();
    const req = Client._build(method, path, options);
    try {
      return Client._take(blocking.send(handle, req));
    } finally {
      c.requestFree(req);
    }
  }

  get(path, options) { return this.request('GET', path, options); }
  post(path, options) { return this.request('POST', path, options); }
  put(path, options) { return this.request('PUT', path, options); }
  patch(path, options) { return this.request('PATCH', path, options); }
  delete(path, options) { return this.request('DELETE', path, options); }

  getSync(path, options) { return this.requestSync('GET', path, options); }
  postSync(path, options) { return this.requestSync('POST', path, options); }
  putSync(path, options) { return this.requestSync('PUT', path, options); }
  patchSync(path, options) { return this.requestSync('PATCH', path, options); }
  deleteSync(path, options) { return this.requestSync('DELETE', path, options); }

  /** Frees the client now (otherwise the garbage collector does); calls made after reject
   * (or throw) LwolfError. Calls still in flight finish first: the last one frees it. */
  close() {
    const handle = this._handle;
    if (!handle) return;
    this._handle = null;
    finalizer.unregister(this);
    if (this._calls > 0) this._freeWhenSettled = handle;
    else c.clientFree(handle);
  }
}
Client._handle = Symbol('handle');

if (!threads.isMainThread && threads.workerData && threads.workerData[CALL_THREAD]) {
  serveCalls(threads.parentPort);
}

module.exports = {
  Client,
  Response,
  LwolfError,
  Status,
  setAsyncThreads,
  version: () => c.version(),
  libraryPath,
};
