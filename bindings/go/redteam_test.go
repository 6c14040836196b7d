package lwolfauth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A client that nothing references after a call began must outlive the call: the
// finalizer must not free it while the library still uses it (the GC runs all along).
func TestAClientIsNotFreedDuringACall(t *testing.T) {
	var freedDuring atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(600 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"TKN-gc","token_type":"Bearer","expires_in":3600}`)
	}))
	defer ts.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := NewClient(map[string]string{
			"client_id": "gc", "client_secret": "gc-secret",
			"token_url": ts.URL + "/oauth/token", "api_base_url": ts.URL,
		})
		if err != nil {
			t.Fatal(err)
		}
		// This client's call, watched by its own finalizer (the binding's, replaced).
		calling := &atomic.Bool{}
		runtime.SetFinalizer(c, nil)
		runtime.SetFinalizer(c, func(c *Client) {
			if calling.Load() {
				freedDuring.Store(true)
			}
			c.Close()
		})
		calling.Store(true)
		_, err = c.Token()
		calling.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		if freedDuring.Load() {
			t.Fatal("the finalizer freed the client during its call")
		}
	}
}

type panickingWriter struct{}

func (panickingWriter) Write([]byte) (int, error) { panic("the writer panics") }

// A panic in the writer given to SendTo stops the transfer with an error; it does not
// unwind through the library.
func TestAPanickingWriterAbortsTheStream(t *testing.T) {
	c := client(t, nil)
	_, err := c.SendTo(&Request{Method: "GET", Path: "/v1/offices"}, panickingWriter{})
	if err == nil || !strings.Contains(err.Error(), "the writer panics") {
		t.Fatalf("SendTo with a panicking writer: %v", err)
	}
	// The client still works.
	var out bytes.Buffer
	resp, err := c.SendTo(&Request{Method: "GET", Path: "/v1/offices"}, &out)
	if err != nil || resp.Status != 200 || out.Len() == 0 {
		t.Fatalf("SendTo after the panic: %v %v", resp, err)
	}
}
