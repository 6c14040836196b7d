package lwolfauth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
	bin := os.Getenv("LWOLF_SANDBOX_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "lwolf-sandbox")
	}
	cmd := exec.Command(bin, "--port", "0", "--exit-on-stdin-eof")
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
	settings = map[string]string{
		"client_id":     env["LWOLF_CLIENT_ID"],
		"client_secret": env["LWOLF_CLIENT_SECRET"],
		"token_url":     env["LWOLF_TOKEN_URL"],
		"api_base_url":  env["LWOLF_API_BASE_URL"],
		// The Transact stand-in's, for Transact().
		"subscription_key":  env["LWOLF_SUBSCRIPTION_KEY"],
		"transact_base_url": env["LWOLF_TRANSACT_BASE_URL"],
	}
	code := m.Run()
	stdin.Close()
	cmd.Wait()
	os.Exit(code)
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
