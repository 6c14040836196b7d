'use strict';
// The Node binding against the sandbox (LWOLF_SANDBOX_BIN, or this tree's
// target/debug/lwolf-sandbox), started by this test on a free port.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const { Client, LwolfError, Status, version } = require('..');

let sandbox;
let settings;

// A sandbox of this test's own, on a free port, with `args`; `stop()` ends it.
async function startSandbox(args = []) {
  const bin = process.env.LWOLF_SANDBOX_BIN
    || path.resolve(__dirname, '..', '..', '..', 'target', 'debug', 'lwolf-sandbox');
  const proc = spawn(bin, ['--port', '0', '--exit-on-stdin-eof', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
  const env = {};
  const lines = readline.createInterface({ input: proc.stdout });
  for await (const line of lines) {
    const m = /^export (LWOLF_[A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
    if (env.LWOLF_CLIENT_SECRET && env.LWOLF_SUBSCRIPTION_KEY && env.LWOLF_TRANSACT_BASE_URL) break;
  }
  return {
    proc,
    settings: {
      client_id: env.LWOLF_CLIENT_ID,
      client_secret: env.LWOLF_CLIENT_SECRET,
      token_url: env.LWOLF_TOKEN_URL,
      api_base_url: env.LWOLF_API_BASE_URL,
      subscription_key: env.LWOLF_SUBSCRIPTION_KEY,
      transact_base_url: env.LWOLF_TRANSACT_BASE_URL,
    },
    stop: () => proc.stdin.end(),
  };
}

before(async () => {
  sandbox = await startSandbox();
  settings = sandbox.settings;
});

after(() => sandbox.stop());

test('a token, cached, with its info: the Promise forms and the Sync forms', async () => {
  const client = new Client(settings);
  const pending = client.token();
  assert.ok(pending instanceof Promise);
  const token = await pending;
  assert.ok(token.length > 20);
  assert.equal(await client.token(), token);
  assert.equal(client.tokenSync(), token);
  const info = await client.tokenInfo();
  assert.match(info.fingerprint, /^[0-9a-f]{12}$/);
  assert.equal(info.tokenType, 'Bearer');
  assert.ok(info.expiresAt > Date.now() / 1000);
  assert.ok(info.refreshAt <= info.usableUntil && info.usableUntil <= info.expiresAt);
  assert.ok(!JSON.stringify(info).includes(token));
  assert.deepEqual(client.tokenInfoSync(), info);
  client.close();
});

test('requests: headers, query, a JSON body, any status', async () => {
  const client = new Client(settings);
  const list = await client.get('/v1/transactions', { query: { $top: '1' } });
  assert.equal(list.status, 200);
  assert.ok(list.ok);
  assert.match(list.headers['content-type'], /^application\/json/);
  assert.equal(list.json().data.length, 1);
  const created = await client.post('/v1/transactions', { body: { address: '1 Main St' } });
  assert.equal(created.status, 201, created.text());
  assert.equal(created.json().address, '1 Main St');
  const missing = await client.get('/v1/transactions/none');
  assert.equal(missing.status, 404);
  assert.ok(!missing.ok);
  const origin = new URL(settings.api_base_url).origin;
  const options = {
    headers: { 'X-One': '1' },
    query: [['q', 'a b&c']],
    body: Buffer.from([1, 2, 3]),
    contentType: 'application/octet-stream',
    timeoutMs: 5000,
  };
  for (const echo of [
    (await client.request('PATCH', `${origin}/_sandbox/echo`, options)).json(),
    client.requestSync('PATCH', `${origin}/_sandbox/echo`, options).json(),
  ]) {
    assert.equal(echo.method, 'PATCH');
    assert.deepEqual(echo.query, [['q', 'a b&c']]);
    assert.ok(echo.headers.some(([n, v]) => n === 'x-one' && v === '1'));
    assert.equal(echo.body_len, 3);
  }
  // Each helper, in both forms: the method it names.
  for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
    const upper = method.toUpperCase();
    assert.equal((await client[method](`${origin}/_sandbox/echo`)).json().method, upper);
    assert.equal(client[`${method}Sync`](`${origin}/_sandbox/echo`).json().method, upper);
  }
  client.close();
});

test('errors carry the status, the HTTP status and the error code, thrown or rejected alike', async () => {
  const wrong = new Client({ ...settings, client_secret: 'wrong-secret-node' });
  const described = (e) => {
    assert.ok(e instanceof LwolfError);
    assert.equal(e.status, Status.ERR_INVALID_CREDENTIALS);
    assert.equal(e.statusName, 'LWOLF_ERR_INVALID_CREDENTIALS');
    assert.equal(e.httpStatus, 401);
    assert.equal(e.error, 'access_denied');
    assert.ok(!e.message.includes('wrong-secret-node'));
    return true;
  };
  let thrown;
  assert.throws(() => wrong.tokenSync(), (e) => { thrown = e; return described(e); });
  // The message the library wrote on the call thread, not this thread's (empty) last error.
  await assert.rejects(wrong.token(), (e) => described(e) && e.message === thrown.message && e.message !== '');
  await assert.rejects(wrong.tokenInfo(), described);
  await assert.rejects(wrong.get('/v1/offices'), described);
  wrong.close();
  assert.throws(() => new Client({ no_such_key: 'x' }), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  assert.throws(() => new Client({}), (e) => e.status === Status.ERR_CONFIG);
  const client = new Client(settings);
  assert.throws(() => client.requestSync('NOT A METHOD', '/x'), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  // A Promise form never throws: what fails before the call rejects too.
  const bad = client.request('NOT A METHOD', '/x');
  assert.ok(bad instanceof Promise);
  await assert.rejects(bad, (e) => e instanceof LwolfError && e.status === Status.ERR_INVALID_ARGUMENT);
  assert.throws(() => client.getSync('https://elsewhere.example/x'), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  await assert.rejects(client.get('https://elsewhere.example/x'),
    (e) => e.status === Status.ERR_INVALID_ARGUMENT && /origin/i.test(e.message));
  client.close();
  assert.throws(() => client.tokenSync(), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  await assert.rejects(client.token(), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  await assert.rejects(client.get('/v1/offices'), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
});

test('tenants have their own token; forApi shares it', async () => {
  const client = new Client(settings);
  const token = await client.token();
  const tenant = client.forTenant('customer-42');
  assert.notEqual(await tenant.token(), token);
  const transact = client.forApi(new URL(settings.api_base_url).origin + '/transact-workflow');
  assert.equal(await transact.token(), token);
  client.close();
  assert.ok((await tenant.token()).length > 20, 'a tenant client outlives its parent');
  tenant.close();
  transact.close();
  assert.match(version(), /^\d+\.\d+\.\d+/);
});

test('the event loop keeps turning while a 500 ms token fetch is in flight', async () => {
  const slow = await startSandbox(['--token-latency-ms', '500']);
  try {
    const client = new Client(slow.settings);
    let ticks = 0;
    const timer = setInterval(() => { ticks += 1; }, 10);
    const started = process.hrtime.bigint();
    const token = await client.token();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    clearInterval(timer);
    assert.ok(elapsed >= 450, `the fetch took ${elapsed} ms: was the token endpoint slow?`);
    // A 10 ms interval over about 500 ms: some 50 ticks; a blocked loop gets none until the
    // call returns (then one).
    assert.ok(ticks >= 20, `${ticks} ticks in ${elapsed.toFixed(0)} ms`);
    assert.ok(token.length > 20);
    assert.equal(client.tokenSync(), token, 'the token the Promise gave is the cached one');

    // A request on a fresh client waits for its token off the loop too, and the Sync form
    // blocks: no tick runs during it.
    const other = new Client(slow.settings);
    ticks = 0;
    const again = setInterval(() => { ticks += 1; }, 10);
    const response = await other.get('/v1/offices');
    assert.equal(response.status, 200);
    assert.ok(ticks >= 20, `${ticks} ticks during get()`);
    const third = new Client(slow.settings);
    ticks = 0;
    const blockedStart = Date.now();
    assert.equal(third.getSync('/v1/offices').status, 200);
    assert.ok(Date.now() - blockedStart >= 450);
    assert.equal(ticks, 0, 'getSync() blocks the loop, as its name says');
    clearInterval(again);
    client.close();
    other.close();
    third.close();
  } finally {
    slow.stop();
  }
});

test('calls at once share one fetch; close() waits for the calls in flight', async () => {
  const slow = await startSandbox(['--token-latency-ms', '300']);
  try {
    const client = new Client(slow.settings);
    const calls = [client.token(), client.token(), client.tokenInfo(), client.get('/v1/offices'),
      client.token(), client.token()];
    client.close(); // while all of them wait on the one token request
    const [a, b, info, response, ...rest] = await Promise.all(calls);
    assert.equal(a, b);
    assert.ok(rest.every((t) => t === a));
    assert.match(info.fingerprint, /^[0-9a-f]{12}$/);
    assert.equal(response.status, 200);
    const origin = slow.settings.api_base_url.replace(/\/backoffice$/, '');
    const stats = await (await fetch(`${origin}/_sandbox/stats`)).json();
    assert.equal(stats.token_requests, 1);
    await assert.rejects(client.token(), (e) => e.status === Status.ERR_INVALID_ARGUMENT);
  } finally {
    slow.stop();
  }
});

async function sandboxStats() {
  const origin = settings.api_base_url.replace(/\/backoffice$/, '');
  const res = await fetch(`${origin}/_sandbox/stats`);
  return res.json();
}

test('the Transact handle: request ids, stats, and a 403 that never costs a token', async () => {
  const client = new Client(settings);
  const transact = client.transact();
  const first = await transact.get('/v1/transactions');
  assert.equal(first.status, 200, first.text());
  assert.match(first.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual((await transact.get('/v1/transactions')).requestId, first.requestId);
  assert.equal(transact.getSync('/v1/x', { headers: { 'X-Request-ID': 'mine-3' } }).requestId, 'mine-3');
  const stats = client.stats();
  assert.equal(stats.apiRequests, 3);
  assert.equal(stats.tokenRequests, 1);
  assert.ok(stats.tokenExpiresAt > Date.now());
  transact.close();
  client.close();

  const before = (await sandboxStats()).token_requests;
  const refused = new Client({ ...settings, subscription_key: 'not-the-sandbox-key' });
  const handle = refused.transact();
  for (let i = 0; i < 200; i++) assert.equal(handle.getSync('/v1/transactions').status, 403);
  assert.equal((await sandboxStats()).token_requests - before, 1);
  const declined = refused.stats();
  assert.equal(declined.renewalsDeclined, 200);
  assert.equal(declined.forcedRenewals, 0);
  handle.close();
  refused.close();

  const { subscription_key: _, ...keyless } = settings;
  const none = new Client(keyless);
  await assert.rejects(none.transact().get('/v1/transactions'),
    (e) => e.status === Status.ERR_CONFIG && /subscription_key/.test(e.message));
  none.close();
});

// A redis-server of the test's own on a free loopback port; the test fails without one.
async function startRedis() {
  const net = require('node:net');
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = probe.address();
      probe.close(() => resolve(p));
    });
  });
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const failed = new Promise((_, reject) => redis.on('error', () => reject(
    new Error('redis-server is not installed (apt-get install redis-server)'))));
  const ping = () => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
    s.on('error', () => resolve(false));
  });
  const deadline = Date.now() + 10000;
  while (!(await Promise.race([ping(), failed]))) {
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => redis.kill('SIGKILL') };
}

async function tokenRequests() {
  const origin = settings.api_base_url.replace(/\/backoffice$/, '');
  const res = await fetch(`${origin}/_sandbox/stats`);
  return (await res.json()).token_requests;
}

test('clients share one token through cache_url', async () => {
  const redis = await startRedis();
  try {
    const before = await tokenRequests();
    const tokens = [];
    for (let i = 0; i < 3; i++) {
      const client = new Client({ ...settings, cache_url: redis.url });
      tokens.push(i === 0 ? client.tokenSync() : await client.token());
      client.close();
    }
    assert.equal(new Set(tokens).size, 1);
    assert.equal(await tokenRequests() - before, 1);
    assert.throws(() => new Client({ client_id: 'x', client_secret: 'y', cache_url: 'ftp://h' }),
      (e) => e instanceof LwolfError && e.status === Status.ERR_CONFIG && /cache_url/.test(e.message));
  } finally {
    redis.stop();
  }
});
