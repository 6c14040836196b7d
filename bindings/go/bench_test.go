package lwolfauth

import "testing"

var sink int

// BenchmarkToken reads the cached token (benches/run.sh runs it against its own server for
// BENCHMARKS.md row 8.2, beside BenchmarkVariable).
func BenchmarkToken(b *testing.B) {
	c, err := FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Token(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, _ := c.Token()
		sink += len(t)
	}
}

// BenchmarkVariable reads a variable holding a token of the same length: the baseline.
func BenchmarkVariable(b *testing.B) {
	c, err := FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	token, _ := c.Token()
	c.Close()
	holder := &struct{ token string }{token}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink += len(holder.token)
	}
}
