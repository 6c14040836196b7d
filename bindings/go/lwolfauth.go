// Package lwolfauth is the Go binding of liblwolf_auth: tokens and API calls for the Lone
// Wolf Technologies APIs (OAuth 2.0 client credentials), through cgo.
//
// Calls block, as the library's do: a cached token is a lock and a copy; a fetch or an API
// request waits on the network. The calls that may wait on the network have a form that takes
// a context.Context (TokenContext, TokenInfoContext, SendContext, GetContext, SendToContext):
// it returns when the context ends, with an error that wraps ctx.Err(). A Client is safe for
// concurrent use. Errors are values (*Error, with the C status, the HTTP status and the
// server's error code).
//
// The module as published (a Go module proxy's copy, `cargo xtask dist`) carries the header
// and, for linux/amd64, a static build of the library: `go get` and `go build` need nothing
// installed. Elsewhere, or with `-tags lwolf_dynamic`, it links the system's liblwolf_auth
// (link_system.go). In the source tree, point cgo at a build:
//
//	CGO_LDFLAGS="-L$PWD/target/release -Wl,-rpath,$PWD/target/release" go test ./...
package lwolfauth

/*
#cgo CFLAGS: -I${SRCDIR}/include -I${SRCDIR}/../../include
#include <stdint.h>
#include <stdlib.h>
#include "lwolf_auth.h"

lwolf_status lwolf_go_send_to(const lwolf_client *client, const lwolf_request *req,
                              uintptr_t handle, lwolf_response **out);
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Status is the library's status code (LWOLF_OK, LWOLF_ERR_*).
type Status uint32

// The status codes of the C ABI.
const (
	OK                 Status = 0
	ErrInvalidArgument Status = 1
	ErrConfig          Status = 2
	ErrInvalidCreds    Status = 3
	ErrBadRequest      Status = 4
	ErrForbidden       Status = 5
	ErrRateLimited     Status = 6
	ErrServer          Status = 7
	ErrTransport       Status = 8
	ErrInvalidResponse Status = 9
	ErrBufferTooSmall  Status = 10
	ErrInternal        Status = 11
	ErrAborted         Status = 12
	ErrDeadline        Status = 13
)

// String is the C name: "LWOLF_ERR_CONFIG", ...
func (s Status) String() string { return C.GoString(C.lwolf_status_name(C.uint32_t(s))) }

// Error is a failure of the library. Its message never holds a secret or a token.
type Error struct {
	Status     Status
	Message    string
	HTTPStatus int    // what the server answered with; 0 when none answered
	Code       string // the server's OAuth error (or the API's code), if any
}

func (e *Error) Error() string { return e.Message }

// lastError reads this thread's last error: call it on the goroutine's locked thread.
func lastError(status C.lwolf_status) error {
	if status == 0 {
		return nil
	}
	return &Error{
		Status:     Status(status),
		Message:    C.GoString(C.lwolf_last_error_message()),
		HTTPStatus: int(C.lwolf_last_error_http_status()),
		Code:       C.GoString(C.lwolf_last_error_code()),
	}
}

// call runs f on one OS thread, so that the last error it reads is its own.
func call(f func() C.lwolf_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return lastError(f())
}

// Client is a token client for one identity. Close it when done (a finalizer frees it
// otherwise).
type Client struct {
	h *C.lwolf_client
	// The calls using h, and closed once Close ran: the last of them frees h. A call that
	// its context gave up on goes on in the library, so Close cannot free h under it.
	refs atomic.Int64
	// A token call that its context gave up on while it still waits in the library (for a
	// fetch): later calls with a context wait for it to end, or for their own context, before
	// they start another, so a loop of calls with short deadlines against a token endpoint
	// that hangs holds one thread, not one per call.
	stray atomic.Pointer[inFlight]
}

// closed marks refs once Close ran.
const closed = int64(1) << 62

// inFlight is closed when a call running on its own goroutine returns from the library.
type inFlight struct{ done chan struct{} }

// acquire is the handle for one call, and held: whether release must follow (false after
// Close: the call then hands NULL to the library, which fails it with ErrInvalidArgument).
func (c *Client) acquire() (h *C.lwolf_client, held bool) {
	for {
		s := c.refs.Load()
		if s&closed != 0 {
			return nil, false
		}
		if c.refs.CompareAndSwap(s, s+1) {
			return c.h, true
		}
	}
}

func (c *Client) release() {
	if c.refs.Add(-1) == closed {
		C.lwolf_client_free(c.h)
	}
}

// ctxError is what a call returns when its context ends first.
func ctxError(op string, err error) error { return fmt.Errorf("lwolfauth: %s: %w", op, err) }

type outcome[T any] struct {
	v   T
	err error
}

// within runs f(handle) as a call bounded by ctx: a context that has ended fails it at once,
// with nothing sent; one that ends while f waits in the library returns at once with
// ctx.Err() wrapped, and f finishes on its own goroutine (the library has no way to stop a
// call: its own timeout_ms and deadline_ms bound it), then gone runs (under the caller: it
// must make f's further effects harmless). A result that is in when the context ends is
// returned. A token call (tokenWait) waits first for a stray one (see Client.stray).
// context.Background() and other contexts that never end run f on the calling goroutine.
func within[T any](ctx context.Context, c *Client, op string, tokenWait bool,
	f func(*C.lwolf_client) (T, error), gone func()) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, ctxError(op, err)
	}
	if ctx.Done() == nil {
		h, held := c.acquire()
		if held {
			defer c.release()
		}
		return f(h)
	}
	if tokenWait {
		if w := c.stray.Load(); w != nil {
			select {
			case <-w.done:
			case <-ctx.Done():
				return zero, ctxError(op, ctx.Err())
			}
		}
	}
	h, held := c.acquire()
	w := &inFlight{done: make(chan struct{})}
	result := make(chan outcome[T], 1)
	go func() {
		v, err := f(h)
		if held {
			c.release()
		}
		c.stray.CompareAndSwap(w, nil)
		close(w.done)
		result <- outcome[T]{v, err}
	}()
	select {
	case o := <-result:
		return o.v, o.err
	case <-ctx.Done():
		select {
		case o := <-result:
			return o.v, o.err
		default:
		}
		if gone != nil {
			gone()
		}
		if tokenWait {
			c.markStray(w)
		}
		return zero, ctxError(op, ctx.Err())
	}
}

// markStray makes w the call later token calls wait for, unless another one still runs.
func (c *Client) markStray(w *inFlight) {
	for {
		cur := c.stray.Load()
		if cur != nil && !isDone(cur.done) {
			return
		}
		if c.stray.CompareAndSwap(cur, w) {
			break
		}
	}
	if isDone(w.done) { // it ended meanwhile: nothing to wait for
		c.stray.CompareAndSwap(w, nil)
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// NewClient makes a client from configuration keys (client_id, client_secret, token_url,
// api_base_url, dpop, ...). With fromEnv the LWOLF_* variables are read first.
func newClient(settings map[string]string, fromEnv bool) (*Client, error) {
	var cfg *C.lwolf_config
	err := call(func() C.lwolf_status {
		if fromEnv {
			return C.lwolf_config_from_env(&cfg)
		}
		return C.lwolf_config_new(&cfg)
	})
	if err != nil {
		return nil, err
	}
	defer C.lwolf_config_free(cfg)
	for key, value := range settings {
		k, v := C.CString(key), C.CString(value)
		err := call(func() C.lwolf_status { return C.lwolf_config_set(cfg, k, v) })
		C.free(unsafe.Pointer(k))
		C.free(unsafe.Pointer(v))
		if err != nil {
			return nil, err
		}
	}
	var h *C.lwolf_client
	if err := call(func() C.lwolf_status { return C.lwolf_client_new(cfg, &h) }); err != nil {
		return nil, err
	}
	return wrap(h), nil
}

// NewClient makes a client from configuration keys.
func NewClient(settings map[string]string) (*Client, error) { return newClient(settings, false) }

// FromEnv makes a client from the LWOLF_* environment variables, overrides applied on top.
func FromEnv(overrides map[string]string) (*Client, error) { return newClient(overrides, true) }

func wrap(h *C.lwolf_client) *Client {
	c := &Client{h: h}
	runtime.SetFinalizer(c, (*Client).Close)
	return c
}

// Close frees the client. Calls after Close fail with ErrInvalidArgument; calls still in the
// library (one a context gave up on, say) finish first, and the last of them frees it.
func (c *Client) Close() {
	for {
		s := c.refs.Load()
		if s&closed != 0 {
			return
		}
		if c.refs.CompareAndSwap(s, s|closed) {
			if s == 0 {
				C.lwolf_client_free(c.h)
			}
			runtime.SetFinalizer(c, nil)
			return
		}
	}
}

// use runs a call that never waits on the network with the handle (NULL after Close).
func (c *Client) use(f func(h *C.lwolf_client) C.lwolf_status) error {
	h, held := c.acquire()
	if held {
		defer c.release()
	}
	return call(func() C.lwolf_status { return f(h) })
}

// tokenBuffers are reused by Token, so that a read allocates only the string it returns.
var tokenBuffers = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}

// Token is a usable bearer token: the cached one, or a new one. A secret: never log it.
func (c *Client) Token() (string, error) { return c.TokenContext(context.Background()) }

// TokenContext is Token bounded by ctx: a context that has ended fails it at once (nothing
// is sent), and one that ends while a token is fetched returns at once with ctx.Err() wrapped
// (errors.Is(err, context.DeadlineExceeded), or context.Canceled). The fetch goes on, within
// the client's deadline_ms, and its token is cached for the next call.
func (c *Client) TokenContext(ctx context.Context) (string, error) {
	return within(ctx, c, "token", true, tokenOf, nil)
}

func tokenOf(h *C.lwolf_client) (string, error) {
	pooled := tokenBuffers.Get().(*[]byte)
	defer tokenBuffers.Put(pooled)
	for {
		buf := *pooled
		var n C.size_t
		var status C.lwolf_status
		err := call(func() C.lwolf_status {
			status = C.lwolf_client_token(h, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
			return status
		})
		if Status(status) == ErrBufferTooSmall {
			*pooled = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return "", err
		}
		token := string(buf[:n])
		for i := range buf[:n] {
			buf[i] = 0 // no copy of the secret left in the pool
		}
		return token, nil
	}
}

// TokenInfo describes the current token, safely (a fingerprint, never the token).
type TokenInfo struct {
	Fingerprint string
	TokenType   string // "Bearer", or "DPoP" for a token bound to the client's key
	ExpiresAt   time.Time
	RefreshAt   time.Time
	UsableUntil time.Time
	Lifetime    time.Duration
}

// TokenInfo fetches a token if none is cached, and describes it.
func (c *Client) TokenInfo() (TokenInfo, error) { return c.TokenInfoContext(context.Background()) }

// TokenInfoContext is TokenInfo bounded by ctx, as TokenContext is.
func (c *Client) TokenInfoContext(ctx context.Context) (TokenInfo, error) {
	return within(ctx, c, "token info", true, tokenInfoOf, nil)
}

func tokenInfoOf(h *C.lwolf_client) (TokenInfo, error) {
	var info C.lwolf_token_info
	if err := call(func() C.lwolf_status { return C.lwolf_client_token_info(h, &info) }); err != nil {
		return TokenInfo{}, err
	}
	return TokenInfo{
		Fingerprint: C.GoString(&info.fingerprint[0]),
		TokenType:   C.GoString(&info.token_type[0]),
		ExpiresAt:   time.Unix(int64(info.expires_at_unix), 0),
		RefreshAt:   time.Unix(int64(info.refresh_at_unix), 0),
		UsableUntil: time.Unix(int64(info.usable_until_unix), 0),
		Lifetime:    time.Duration(info.lifetime_secs) * time.Second,
	}, nil
}

// Invalidate drops the cached token: the next Token fetches a new one.
func (c *Client) Invalidate() error {
	return c.use(func(h *C.lwolf_client) C.lwolf_status { return C.lwolf_client_invalidate(h) })
}

// ForTenant is a client for another customer instance: the same settings and pool, its own
// token.
func (c *Client) ForTenant(lwtClientID string) (*Client, error) {
	id := C.CString(lwtClientID)
	defer C.free(unsafe.Pointer(id))
	var h *C.lwolf_client
	if err := c.use(func(parent *C.lwolf_client) C.lwolf_status {
		return C.lwolf_client_for_tenant(parent, id, &h)
	}); err != nil {
		return nil, err
	}
	return wrap(h), nil
}

// Transact is a client for the Transact API (transact_base_url): the same token, pool and
// caches, lw-subscription-key on every call; a 401 renews the token (bounded), a 403 never
// does (it is about the subscription key). Without a subscription_key its calls fail with
// ErrConfig before anything is sent.
func (c *Client) Transact() (*Client, error) {
	var h *C.lwolf_client
	if err := c.use(func(parent *C.lwolf_client) C.lwolf_status {
		return C.lwolf_client_transact(parent, &h)
	}); err != nil {
		return nil, err
	}
	return wrap(h), nil
}

// Stats is what a client and every handle made from it have done.
type Stats struct {
	TokenRequests    uint64    // requests sent to the token endpoint, retries included
	TokenFailures    uint64    // token fetches that ended in an error
	TokensShared     uint64    // tokens taken from cache_dir or cache_url instead of fetched
	ForcedRenewals   uint64    // renewals after an API 401/403
	RenewalsDeclined uint64    // 401/403 handed back without a renewal (bound, or a Transact 403)
	Retries          uint64    // retries of token and API requests
	APIRequests      uint64    // API request attempts sent
	Throttled        uint64    // calls that waited for max_in_flight or max_requests_per_second
	TokenExpiresAt   time.Time // the cached token's expiry; zero when none
}

// Stats reads the client's counters.
func (c *Client) Stats() (Stats, error) {
	var raw C.lwolf_stats
	raw.size = C.uint32_t(unsafe.Sizeof(raw))
	if err := c.use(func(h *C.lwolf_client) C.lwolf_status { return C.lwolf_client_stats(h, &raw) }); err != nil {
		return Stats{}, err
	}
	s := Stats{
		TokenRequests:    uint64(raw.token_requests),
		TokenFailures:    uint64(raw.token_failures),
		TokensShared:     uint64(raw.tokens_shared),
		ForcedRenewals:   uint64(raw.forced_renewals),
		RenewalsDeclined: uint64(raw.renewals_declined),
		Retries:          uint64(raw.retries),
		APIRequests:      uint64(raw.api_requests),
		Throttled:        uint64(raw.throttled),
	}
	if raw.token_expires_at_ms != 0 {
		s.TokenExpiresAt = time.UnixMilli(int64(raw.token_expires_at_ms))
	}
	return s, nil
}

// Request is one API request. Path is under api_base_url, or an absolute URL on its origin.
type Request struct {
	Method      string
	Path        string
	Header      [][2]string
	Query       [][2]string
	Body        []byte
	ContentType string        // empty: application/json
	Timeout     time.Duration // each attempt's bound; 0: the client's timeout_ms
}

// Response is an API response, whatever its status.
type Response struct {
	Status    int
	Header    http.Header
	Body      []byte // empty for SendTo: the body went to the writer
	RequestID string // the id the call carried in request_id_header; empty when that is off
}

func build(r *Request) (*C.lwolf_request, error) {
	m, p := C.CString(r.Method), C.CString(r.Path)
	defer C.free(unsafe.Pointer(m))
	defer C.free(unsafe.Pointer(p))
	var req *C.lwolf_request
	if err := call(func() C.lwolf_status { return C.lwolf_request_new(m, p, &req) }); err != nil {
		return nil, err
	}
	fail := func(err error) (*C.lwolf_request, error) {
		C.lwolf_request_free(req)
		return nil, err
	}
	pair := func(set func(*C.lwolf_request, *C.char, *C.char) C.lwolf_status, kv [2]string) error {
		k, v := C.CString(kv[0]), C.CString(kv[1])
		defer C.free(unsafe.Pointer(k))
		defer C.free(unsafe.Pointer(v))
		return call(func() C.lwolf_status { return set(req, k, v) })
	}
	for _, h := range r.Header {
		if err := pair(func(q *C.lwolf_request, k, v *C.char) C.lwolf_status { return C.lwolf_request_header(q, k, v) }, h); err != nil {
			return fail(err)
		}
	}
	for _, q := range r.Query {
		if err := pair(func(q *C.lwolf_request, k, v *C.char) C.lwolf_status { return C.lwolf_request_query(q, k, v) }, q); err != nil {
			return fail(err)
		}
	}
	if r.Body != nil {
		var ct *C.char
		if r.ContentType != "" {
			ct = C.CString(r.ContentType)
			defer C.free(unsafe.Pointer(ct))
		}
		body := C.CBytes(r.Body)
		defer C.free(body)
		err := call(func() C.lwolf_status {
			return C.lwolf_request_body(req, (*C.uint8_t)(body), C.size_t(len(r.Body)), ct)
		})
		if err != nil {
			return fail(err)
		}
	}
	if r.Timeout > 0 {
		ms := C.uint64_t(r.Timeout / time.Millisecond)
		if err := call(func() C.lwolf_status { return C.lwolf_request_timeout_ms(req, ms) }); err != nil {
			return fail(err)
		}
	}
	return req, nil
}

func takeResponse(resp *C.lwolf_response) *Response {
	defer C.lwolf_response_free(resp)
	out := &Response{Status: int(C.lwolf_response_status(resp)), Header: http.Header{}}
	if id := C.lwolf_response_request_id(resp); id != nil {
		out.RequestID = C.GoString(id)
	}
	var n C.size_t
	body := C.lwolf_response_body(resp, &n)
	if n > 0 {
		out.Body = C.GoBytes(unsafe.Pointer(body), C.int(n))
	}
	count := int(C.lwolf_response_header_count(resp))
	for i := 0; i < count; i++ {
		var name, value *C.char
		if C.lwolf_response_header_at(resp, C.size_t(i), &name, &value) == 0 {
			out.Header.Add(C.GoString(name), C.GoString(value))
		}
	}
	return out
}

// Send sends r with the token and reads the response whole.
func (c *Client) Send(r *Request) (*Response, error) { return c.SendContext(context.Background(), r) }

// SendContext is Send bounded by ctx: a context that has ended fails it at once, with nothing
// sent, and one that ends while it waits returns at once with ctx.Err() wrapped. It waits for
// a usable token first, within ctx, so a request whose context gave up while a token was
// fetched is never sent. Once sent, the library cannot take a request back: one that ctx gave
// up on finishes on its own (within Request.Timeout, or the client's timeout_ms, per attempt,
// and its deadline_ms), as a cancelled net/http request may have reached the server. A
// response that is in when ctx ends is returned.
func (c *Client) SendContext(ctx context.Context, r *Request) (*Response, error) {
	return c.sendWithin(ctx, r, func(h *C.lwolf_client, req *C.lwolf_request) (*Response, error) {
		var resp *C.lwolf_response
		if err := call(func() C.lwolf_status { return C.lwolf_client_send(h, req, &resp) }); err != nil {
			return nil, err
		}
		return takeResponse(resp), nil
	}, nil)
}

// sendWithin builds r (a bad request fails before anything else), then, with a context that
// may end, waits for a usable token within it, and sends the request with send, bounded by
// ctx. The request is freed by whoever holds it last: the send, or this function when the
// send never began.
func (c *Client) sendWithin(ctx context.Context, r *Request,
	send func(*C.lwolf_client, *C.lwolf_request) (*Response, error), gone func()) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("send", err)
	}
	req, err := build(r)
	if err != nil {
		return nil, err
	}
	// 0: not begun; 1: the send has it; 2: this function took it back (the send never ran).
	var owner atomic.Int32
	defer func() {
		if owner.CompareAndSwap(0, 2) {
			C.lwolf_request_free(req)
		}
	}()
	if ctx.Done() != nil {
		if _, err := within(ctx, c, "send", true, tokenInfoOf, nil); err != nil {
			return nil, err
		}
	}
	return within(ctx, c, "send", false, func(h *C.lwolf_client) (*Response, error) {
		if !owner.CompareAndSwap(0, 1) {
			return nil, ctxError("send", context.Canceled) // its caller has gone: not sent
		}
		defer C.lwolf_request_free(req)
		return send(h, req)
	}, gone)
}

// Get sends a GET to path.
func (c *Client) Get(path string) (*Response, error) {
	return c.Send(&Request{Method: "GET", Path: path})
}

// GetContext sends a GET to path, bounded by ctx as SendContext is.
func (c *Client) GetContext(ctx context.Context, path string) (*Response, error) {
	return c.SendContext(ctx, &Request{Method: "GET", Path: path})
}

// writer is what the C write callback reaches through a cgo.Handle.
type writer struct {
	mu  sync.Mutex
	w   io.Writer
	err error
	// The caller has returned (its context ended): nothing more is written, and the
	// transfer stops.
	gone bool
}

//export lwolfGoWrite
func lwolfGoWrite(handle C.uintptr_t, data *C.uint8_t, n C.size_t) (status C.int) {
	w := cgo.Handle(handle).Value().(*writer)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone {
		return 1
	}
	// A panic must not unwind through the library's frames: it stops the transfer, and
	// SendTo returns it as an error.
	defer func() {
		if p := recover(); p != nil {
			w.err = fmt.Errorf("the writer panicked: %v", p)
			status = 1
		}
	}()
	if _, err := w.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))); err != nil {
		w.err = err
		return 1
	}
	return 0
}

// SendTo sends r and writes the body of the response to w as it arrives, never holding it
// whole; the Response has the status and headers. An error from w stops the transfer and
// is returned.
func (c *Client) SendTo(r *Request, w io.Writer) (*Response, error) {
	return c.SendToContext(context.Background(), r, w)
}

// SendToContext is SendTo bounded by ctx, as SendContext is. Once it has returned, w is
// written no more: a body still arriving stops the transfer.
func (c *Client) SendToContext(ctx context.Context, r *Request, w io.Writer) (*Response, error) {
	sink := &writer{w: w}
	gone := func() {
		sink.mu.Lock() // waits for a Write in progress, if any
		sink.gone = true
		sink.mu.Unlock()
	}
	return c.sendWithin(ctx, r, func(h *C.lwolf_client, req *C.lwolf_request) (*Response, error) {
		handle := cgo.NewHandle(sink)
		defer handle.Delete()
		var resp *C.lwolf_response
		err := call(func() C.lwolf_status {
			return C.lwolf_go_send_to(h, req, C.uintptr_t(handle), &resp)
		})
		if err == nil {
			return takeResponse(resp), nil
		}
		sink.mu.Lock()
		werr := sink.err
		sink.mu.Unlock()
		if werr != nil {
			return nil, fmt.Errorf("lwolfauth: the writer stopped the transfer: %w", werr)
		}
		return nil, err
	}, gone)
}

// Version is the library's version.
func Version() string { return C.GoString(C.lwolf_version()) }
