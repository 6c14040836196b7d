// stall.go: the Go baseline of BENCHMARKS.md row 3: golang.org/x/oauth2's client-credentials
// TokenSource (a ReuseTokenSource: one mutex held across the fetch, a token counted as
// expired 10 s early) with CALLERS goroutines calling Token() for WINDOW, while the token
// endpoint takes its delay to answer. Prints one JSON object with every call's latency
// summarised. Built and run by benches/run.sh (GOPATH mode, Debian's golang-golang-x-oauth2-dev).
//
//	stall TOKEN_URL CALLERS WINDOW_MS
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: stall TOKEN_URL CALLERS WINDOW_MS")
		os.Exit(2)
	}
	callers, _ := strconv.Atoi(os.Args[2])
	windowMs, _ := strconv.Atoi(os.Args[3])
	config := clientcredentials.Config{
		ClientID:     "bench-client",
		ClientSecret: "bench-secret",
		TokenURL:     os.Args[1],
	}
	source := config.TokenSource(context.Background())
	if _, err := source.Token(); err != nil {
		fmt.Fprintln(os.Stderr, "first token:", err)
		os.Exit(1)
	}
	window := time.Duration(windowMs) * time.Millisecond
	var mu sync.Mutex
	var all []float64
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			start := time.Now()
			for time.Since(start) < window {
				t0 := time.Now()
				if _, err := source.Token(); err != nil {
					fmt.Fprintln(os.Stderr, "token:", err)
					os.Exit(1)
				}
				mine = append(mine, time.Since(t0).Seconds())
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Float64s(all)
	blocked := 0
	for _, l := range all {
		if l >= 0.1 {
			blocked++
		}
	}
	out, _ := json.Marshal(map[string]interface{}{
		"calls":     len(all),
		"max_s":     all[len(all)-1],
		"p999_s":    all[int(float64(len(all)-1)*0.999)],
		"over_100ms": blocked,
	})
	fmt.Println(string(out))
}
