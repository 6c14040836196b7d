package lwolfauth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The sandbox (LWOLF_SANDBOX_BIN, or this tree's target/debug/lwolf-sandbox),
// started for the whole run on a free port.
var settings map[string]string

func TestMain(m *testing.M) {
	flag.Parse()
	// Benchmarks alone (-run '^$', as benches/run.sh runs them): no tests, no sandbox.
	if flag.Lookup("test.run").Value.String() == "^$" {
		os.Exit(m.Run())
	}
	var stop func()
	settings, stop = startSandbox()
	code := m.Run()
	stop()
	os.Exit(code)
}

// startSandbox starts a sandbox with args on a free port: the settings that point a client
// at it, and how to stop it.
func startSandbox(args ...string) (map[string]string, func()) {
	bin := os.Getenv("LWOLF_SANDBOX_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "lwolf-sandbox")
	}
	cmd := exec.Command(bin, append([]string{"--port", "0", "--exit-on-stdin-eof"}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic("cannot start the sandbox " + bin + ": " + err.Error())
	}
	export := regexp.MustCompile(`^export (LWOLF_[A-Z_]+)=(.*)$`)
	env := map[string]string{}
	lines := bufio.NewScanner(stdout)
	for len(env) < 6 && lines.Scan() {
		if m := export.FindStringSubmatch(lines.Text()); m != nil {
			env[m[1]] = strings.Trim(m[2], "'")
		}
	}
	return map[string]string{
			"client_id":     env["LWOLF_CLIENT_ID"],
			"client_secret": env["LWOLF_CLIENT_SECRET"],
			"token_url":     env["LWOLF_TOKEN_URL"],
			"api_base_url":  env["LWOLF_API_BASE_URL"],
			// The Transact stand-in's, for Transact().
			"subscription_key":  env["LWOLF_SUBSCRIPTION_KEY"],
			"transact_base_url": env["LWOLF_TRANSACT_BASE_URL"],
		}, func() {
			stdin.Close()
			cmd.Wait()
		}
}

func client(t *testing.T, overrides map[string]string) *Client {
	t.Helper()
	s := map[string]string{}
	for k, v := range settings {
		s[k] = v
	}
	for k, v := range overrides {
		s[k] = v
	}
	c, err := NewClient(s)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func origin() string {
	return strings.TrimSuffix(settings["api_base_url"], "/backoffice")
}

func TestTokenIsCachedAndDescribed(t *testing.T) {
	c := client(t, nil)
	token, err := c.Token()
	if err != nil || len(token) < 20 {
		t.Fatalf("Token: %q %v", token, err)
	}
	again, _ := c.Token()
	if again != token {
		t.Fatal("the token was not cached")
	}
	info, err := c.TokenInfo()
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Fingerprint) != 12 || info.TokenType != "Bearer" || !info.RefreshAt.Before(info.ExpiresAt) {
		t.Fatalf("TokenInfo: %+v", info)
	}
}

func TestRequestsAndResponses(t *testing.T) {
	c := client(t, nil)
	list, err := c.Send(&Request{Method: "GET", Path: "/v1/transactions", Query: [][2]string{{"$top", "1"}}})
	if err != nil || list.Status != 200 {
		t.Fatalf("GET: %+v %v", list, err)
	}
	if !strings.HasPrefix(list.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers: %v", list.Header)
	}
	var page struct{ Data []any }
	if err := json.Unmarshal(list.Body, &page); err != nil || len(page.Data) != 1 {
		t.Fatalf("body %s: %v", list.Body, err)
	}
	created, err := c.Send(&Request{Method: "POST", Path: "/v1/transactions", Body: []byte(`{"address":"1 Main St"}`)})
	if err != nil || created.Status != 201 {
		t.Fatalf("POST: %+v %v", created, err)
	}
	missing, err := c.Get("/v1/transactions/none")
	if err != nil || missing.Status != 404 {
		t.Fatalf("a 404 is a response, not an error: %+v %v", missing, err)
	}
	echo, err := c.Send(&Request{
		Method: "PATCH", Path: origin() + "/_sandbox/echo",
		Header: [][2]string{{"X-One", "1"}}, Query: [][2]string{{"q", "a b&c"}},
		Body: []byte{1, 2, 3}, ContentType: "application/octet-stream",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"PATCH"`, `["x-one","1"]`, `["q","a b&c"]`, `"body_len":3`} {
		if !bytes.Contains(echo.Body, []byte(want)) {
			t.Fatalf("%s not in %s", want, echo.Body)
		}
	}
}

func TestErrorsAreValuesWithTheStatus(t *testing.T) {
	wrong := client(t, map[string]string{"client_secret": "wrong-secret-go"})
	_, err := wrong.Token()
	var e *Error
	if !errors.As(err, &e) || e.Status != ErrInvalidCreds || e.HTTPStatus != 401 || e.Code != "access_denied" {
		t.Fatalf("wrong secret: %#v", err)
	}
	if strings.Contains(e.Error(), "wrong-secret-go") || e.Status.String() != "LWOLF_ERR_INVALID_CREDENTIALS" {
		t.Fatalf("message: %v", e)
	}
	if _, err := NewClient(map[string]string{"no_such_key": "x"}); !errors.As(err, &e) || e.Status != ErrInvalidArgument {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := NewClient(map[string]string{}); !errors.As(err, &e) || e.Status != ErrConfig {
		t.Fatalf("no client id: %v", err)
	}
	c := client(t, nil)
	if _, err := c.Get("https://elsewhere.example/x"); !errors.As(err, &e) || e.Status != ErrInvalidArgument {
		t.Fatalf("another origin: %v", err)
	}
	c.Close()
	if _, err := c.Token(); !errors.As(err, &e) || e.Status != ErrInvalidArgument {
		t.Fatalf("after Close: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSendToStreamsToAWriter(t *testing.T) {
	c := client(t, nil)
	whole, err := c.Get("/v1/transactions")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	head, err := c.SendTo(&Request{Method: "GET", Path: "/v1/transactions"}, &buf)
	if err != nil || head.Status != 200 || len(head.Body) != 0 || !bytes.Equal(buf.Bytes(), whole.Body) {
		t.Fatalf("SendTo: %+v %v (%d bytes)", head, err, buf.Len())
	}
	_, err = c.SendTo(&Request{Method: "GET", Path: "/v1/transactions"}, failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("a failing writer: %v", err)
	}
}

func TestGoroutinesShareOneToken(t *testing.T) {
	c := client(t, nil)
	tenant, err := c.ForTenant("customer-7")
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close()
	var wg sync.WaitGroup
	tokens := make([]string, 16)
	for i := range tokens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tokens[i], _ = c.Token()
		}(i)
	}
	wg.Wait()
	for _, tok := range tokens {
		if tok == "" || tok != tokens[0] {
			t.Fatal("goroutines got different tokens")
		}
	}
	other, _ := tenant.Token()
	if other == tokens[0] || other == "" {
		t.Fatal("a tenant shares its parent's token")
	}
	if Version() == "" {
		t.Fatal("no version")
	}
}

// A redis-server of the test's own on a free loopback port; the test fails without one.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Write([]byte("PING\r\n"))
			reply := make([]byte, 16)
			n, _ := conn.Read(reply)
			conn.Close()
			if strings.HasPrefix(string(reply[:n]), "+PONG") {
				return "redis://" + addr
			}
		}
	}
	t.Fatal("redis-server did not start")
	return ""
}

func tokenRequests(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(origin() + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		TokenRequests int `json:"token_requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.TokenRequests
}

func TestClientsShareOneTokenThroughCacheURL(t *testing.T) {
	url := startRedis(t)
	before := tokenRequests(t)
	var first string
	for i := 0; i < 3; i++ {
		token, err := client(t, map[string]string{"cache_url": url}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = token
		} else if token != first {
			t.Fatalf("client %d got another token", i)
		}
	}
	if got := tokenRequests(t) - before; got != 1 {
		t.Fatalf("%d token requests for 3 clients sharing cache_url", got)
	}
	if _, err := NewClient(map[string]string{"client_id": "x", "client_secret": "y", "cache_url": "ftp://h"}); err == nil ||
		!strings.Contains(err.Error(), "cache_url") {
		t.Fatalf("a bad cache_url: %v", err)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestTransactRequestIDsAndStats(t *testing.T) {
	c := client(t, nil)
	transact, err := c.Transact()
	if err != nil {
		t.Fatal(err)
	}
	defer transact.Close()
	first, err := transact.Get("/v1/transactions")
	if err != nil || first.Status != 200 {
		t.Fatalf("%v %+v", err, first)
	}
	if !uuidV4.MatchString(first.RequestID) {
		t.Fatalf("request id %q", first.RequestID)
	}
	second, _ := transact.Get("/v1/transactions")
	if second.RequestID == first.RequestID {
		t.Fatal("two calls, one id")
	}
	mine, _ := transact.Send(&Request{Method: "GET", Path: "/v1/x", Header: [][2]string{{"X-Request-ID", "mine-9"}}})
	if mine.RequestID != "mine-9" {
		t.Fatalf("the caller's id was not kept: %q", mine.RequestID)
	}
	stats, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.APIRequests != 3 || stats.TokenRequests != 1 || !stats.TokenExpiresAt.After(time.Now()) {
		t.Fatalf("%+v", stats)
	}

	// A refused subscription key: 200 answers 403, and not one more token.
	before := tokenRequests(t)
	refused := client(t, map[string]string{"subscription_key": "not-the-sandbox-key"})
	handle, err := refused.Transact()
	if err != nil {
		t.Fatal(err)
	}
	defer handle.Close()
	for i := 0; i < 200; i++ {
		if r, err := handle.Get("/v1/transactions"); err != nil || r.Status != 403 {
			t.Fatalf("%v %+v", err, r)
		}
	}
	if n := tokenRequests(t) - before; n != 1 {
		t.Fatalf("%d token requests for 200 refusals", n)
	}
	if s, _ := refused.Stats(); s.RenewalsDeclined != 200 || s.ForcedRenewals != 0 {
		t.Fatalf("%+v", s)
	}

	// No subscription key: nothing sent, ErrConfig naming it.
	keyless := client(t, map[string]string{"subscription_key": ""})
	none, _ := keyless.Transact()
	defer none.Close()
	_, err = none.Get("/v1/transactions")
	var e *Error
	if !errors.As(err, &e) || e.Status != ErrConfig || !strings.Contains(e.Message, "subscription_key") {
		t.Fatalf("%v", err)
	}
}

// sandboxStats reads the counters of the sandbox that settings s point at.
func sandboxStats(t *testing.T, s map[string]string) (tokenRequests, apiRequests int) {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(s["api_base_url"], "/backoffice") + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		TokenRequests int `json:"token_requests"`
		APIRequests   int `json:"api_requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.TokenRequests, stats.APIRequests
}

// Every call that may wait on the network, with ctx.
func contextCalls(c *Client) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"TokenContext":     func(ctx context.Context) error { _, err := c.TokenContext(ctx); return err },
		"TokenInfoContext": func(ctx context.Context) error { _, err := c.TokenInfoContext(ctx); return err },
		"GetContext":       func(ctx context.Context) error { _, err := c.GetContext(ctx, "/v1/offices"); return err },
		"SendContext": func(ctx context.Context) error {
			_, err := c.SendContext(ctx, &Request{Method: "POST", Path: "/v1/transactions", Body: []byte(`{}`)})
			return err
		},
		"SendToContext": func(ctx context.Context) error {
			_, err := c.SendToContext(ctx, &Request{Method: "GET", Path: "/v1/offices"}, io.Discard)
			return err
		},
	}
}

// A context that has ended fails every call at once, with ctx.Err() wrapped, and nothing is
// sent: no token request, no API request.
func TestAnEndedContextFailsFastWithNothingSent(t *testing.T) {
	c := client(t, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	tokens, apis := sandboxStats(t, settings)
	for name, f := range contextCalls(c) {
		for _, tc := range []struct {
			ctx  context.Context
			want error
		}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
			started := time.Now()
			err := f(tc.ctx)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, not %v wrapped", name, err, tc.want)
			}
			var e *Error
			if errors.As(err, &e) || !strings.HasPrefix(err.Error(), "lwolfauth: ") {
				t.Fatalf("%s: %#v", name, err)
			}
			if d := time.Since(started); d > 50*time.Millisecond {
				t.Fatalf("%s took %v", name, d)
			}
		}
	}
	if t2, a2 := sandboxStats(t, settings); t2 != tokens || a2 != apis {
		t.Fatalf("sent: %d token and %d API requests", t2-tokens, a2-apis)
	}
	// A context that never ends, or ends later: the calls as they are.
	ctx, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	for name, f := range contextCalls(c) {
		for _, ctx := range []context.Context{ctx, context.Background()} {
			if err := f(ctx); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

// A deadline shorter than a token fetch (the sandbox takes 500 ms to answer) ends the call at
// the deadline with context.DeadlineExceeded wrapped; the fetch goes on and its token is
// cached. A request whose context ends while its token is fetched is never sent.
func TestADeadlineShorterThanATokenFetch(t *testing.T) {
	slow, stop := startSandbox("--token-latency-ms", "500")
	defer stop()
	c, err := NewClient(slow)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// A request the library refuses fails as it is, before any wait for a token.
	var e *Error
	if _, err := c.SendContext(ctx, &Request{Method: "NOT A METHOD", Path: "/v1/offices"}); !errors.As(err, &e) || e.Status != ErrInvalidArgument {
		t.Fatalf("a bad method: %v", err)
	}
	if n, _ := sandboxStats(t, slow); n != 0 {
		t.Fatalf("%d token requests for a request that could not be sent", n)
	}
	started := time.Now()
	_, err = c.TokenContext(ctx)
	took := time.Since(started)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TokenContext: %v", err)
	}
	if took < 90*time.Millisecond || took > 400*time.Millisecond {
		t.Fatalf("TokenContext returned after %v, its deadline was 100 ms", took)
	}
	// The fetch it began is the one that serves the next call.
	token, err := c.Token()
	if err != nil || token == "" {
		t.Fatalf("Token: %v", err)
	}
	if n, _ := sandboxStats(t, slow); n != 1 {
		t.Fatalf("%d token requests", n)
	}

	// Cancelled while waiting: Canceled, at once.
	fresh, err := NewClient(slow)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	started = time.Now()
	_, err = fresh.GetContext(ctx2, "/v1/offices")
	if !errors.Is(err, context.Canceled) || time.Since(started) > 400*time.Millisecond {
		t.Fatalf("GetContext cancelled at 100 ms: %v after %v", err, time.Since(started))
	}
	time.Sleep(600 * time.Millisecond) // the fetch ends
	if _, apis := sandboxStats(t, slow); apis != 0 {
		t.Fatalf("the request its context gave up on was sent (%d API requests)", apis)
	}
}

// A loop of calls with short deadlines while a token fetch hangs holds one call in the
// library, not one per call; Close during such a call frees the client once it returns.
func TestCallsAContextGaveUpOnDoNotPileUp(t *testing.T) {
	slow, stop := startSandbox("--token-latency-ms", "500", "--api-latency-ms", "300")
	defer stop()
	c, err := NewClient(slow)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if _, err := c.TokenContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v", i, err)
		}
		cancel()
	}
	if n := runtime.NumGoroutine() - before; n > 2 {
		t.Fatalf("%d goroutines left waiting in the library", n)
	}
	c.Close() // while the first call still waits for the token
	time.Sleep(700 * time.Millisecond)
	var e *Error
	if _, err := c.Token(); !errors.As(err, &e) || e.Status != ErrInvalidArgument {
		t.Fatalf("after Close: %v", err)
	}

	// A streamed body whose context ended is written no more.
	d, err := NewClient(slow)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	w := &afterReturn{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	path := "/v1/documents/d1?size=65536"
	transact, err := d.Transact()
	if err != nil {
		t.Fatal(err)
	}
	defer transact.Close()
	if _, err := transact.SendToContext(ctx, &Request{Method: "GET", Path: path}, w); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendToContext: %v", err)
	}
	w.returned.Store(true)
	time.Sleep(500 * time.Millisecond) // the answer arrives
	if w.late.Load() {
		t.Fatal("the writer was written after SendToContext returned")
	}
	if _, apis := sandboxStats(t, slow); apis != 1 {
		t.Fatalf("%d API requests", apis)
	}
}

type afterReturn struct{ returned, late atomic.Bool }

func (w *afterReturn) Write(p []byte) (int, error) {
	if w.returned.Load() {
		w.late.Store(true)
	}
	return len(p), nil
}
