// Types for lwolf-auth (index.js): liblwolf_auth through koffi. The calls that may wait on the
// network return Promises and run off the event loop; their `…Sync` forms block.

/** A configuration key's value (`client_id`, `client_secret`, `token_url`, `dpop`, ...). */
export type Settings = Record<string, string | number | boolean | null | undefined>;
export type Pairs = Record<string, string | number> | Array<[string, string | number]>;

export const Status: Readonly<{
  OK: 0; ERR_INVALID_ARGUMENT: 1; ERR_CONFIG: 2; ERR_INVALID_CREDENTIALS: 3; ERR_BAD_REQUEST: 4;
  ERR_FORBIDDEN: 5; ERR_RATE_LIMITED: 6; ERR_SERVER: 7; ERR_TRANSPORT: 8;
  ERR_INVALID_RESPONSE: 9; ERR_BUFFER_TOO_SMALL: 10; ERR_INTERNAL: 11; ERR_ABORTED: 12; ERR_DEADLINE: 13;
}>;

export class LwolfError extends Error {
  /** The C status (a `Status` value). */
  readonly status: number;
  /** `"LWOLF_ERR_INVALID_CREDENTIALS"`, ... */
  readonly statusName: string;
  /** What the server answered with, or null when none answered. */
  readonly httpStatus: number | null;
  /** The server's OAuth `error` (or the API's `code`), if any. */
  readonly error: string | null;
}

export interface TokenInfo {
  fingerprint: string;
  /** `"Bearer"`, or `"DPoP"` for a token bound to the client's key. */
  tokenType: string;
  expiresAt: number;
  refreshAt: number;
  usableUntil: number;
  lifetime: number;
}

export interface RequestOptions {
  headers?: Pairs;
  query?: Pairs;
  /** A string or Buffer as given, or an object sent as JSON. */
  body?: string | Buffer | object;
  contentType?: string;
  timeoutMs?: number;
}

export class Response {
  readonly status: number;
  /** Lower-case names; the first value of each. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly ok: boolean;
  /** The id the call carried in `request_id_header`; null when that header is off. */
  readonly requestId: string | null;
  text(): string;
  json(): any;
}

/** Counters of a client and every handle made from it. */
export interface Stats {
  tokenRequests: number;
  tokenFailures: number;
  tokensShared: number;
  forcedRenewals: number;
  renewalsDeclined: number;
  retries: number;
  apiRequests: number;
  throttled: number;
  /** The cached token's expiry, Unix milliseconds; 0 when none. */
  tokenExpiresAt: number;
}

export class Client {
  constructor(settings: Settings);
  static fromEnv(overrides?: Settings): Client;
  /** A usable token (a secret, never log it), fetched off the event loop if none is cached.
   * Rejects with LwolfError. */
  token(): Promise<string>;
  /** `token()`, blocking until a token is had; throws LwolfError. */
  tokenSync(): string;
  tokenInfo(): Promise<TokenInfo>;
  tokenInfoSync(): TokenInfo;
  invalidate(): void;
  forTenant(lwtClientId: string): Client;
  forApi(apiBaseUrl: string): Client;
  /** The Transact API's handle (needs `subscription_key`). */
  transact(): Client;
  stats(): Stats;
  /** Sends a request off the event loop: a Response for any HTTP status; rejects with
   * LwolfError when none could be had. */
  request(method: string, path: string, options?: RequestOptions): Promise<Response>;
  get(path: string, options?: RequestOptions): Promise<Response>;
  post(path: string, options?: RequestOptions): Promise<Response>;
  put(path: string, options?: RequestOptions): Promise<Response>;
  patch(path: string, options?: RequestOptions): Promise<Response>;
  delete(path: string, options?: RequestOptions): Promise<Response>;
  /** `request()`, blocking; throws LwolfError. */
  requestSync(method: string, path: string, options?: RequestOptions): Response;
  getSync(path: string, options?: RequestOptions): Response;
  postSync(path: string, options?: RequestOptions): Response;
  putSync(path: string, options?: RequestOptions): Response;
  patchSync(path: string, options?: RequestOptions): Response;
  deleteSync(path: string, options?: RequestOptions): Response;
  /** Frees the client (calls still in flight finish first). */
  close(): void;
}

/** How many calls may wait on the network at once off the event loop (default 4); more
 * wait their turn. */
export function setAsyncThreads(n: number): void;
export function version(): string;
export function libraryPath(): string;
