package ns

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLogCache(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, LogCacheKeySize)
	c, err := OpenLogCache(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	refA, refB := []byte("ref-a"), []byte("ref-b")
	if _, ok := c.Get(refA); ok {
		t.Fatal("empty cache hit")
	}
	data := bytes.Repeat([]byte("batch"), 1000)
	if err := c.Put(refA, data); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(refB, []byte("other")); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Get(refA); !ok || !bytes.Equal(got, data) {
		t.Fatal("cached copy not returned")
	}

	// A new process reads what the last one left, and prunes what it did
	// not read.
	c2, err := OpenLogCache(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c2.Get(refA); !ok || !bytes.Equal(got, data) {
		t.Fatal("copy not found by the next process")
	}
	os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, cacheName(refB)+".tmp-123"), []byte("x"), 0o600)
	if n, err := c2.Prune(); err != nil || n != 2 {
		t.Fatalf("prune removed %d (%v), want the unread copy and the temporary file", n, err)
	}
	if _, ok := c2.Get(refB); ok {
		t.Fatal("pruned copy still there")
	}
	if _, ok := c2.Get(refA); !ok {
		t.Fatal("read copy pruned")
	}
	if _, err := os.Stat(filepath.Join(dir, "unrelated")); err != nil {
		t.Fatal("prune removed a file that is not a copy")
	}

	// Another key, a damaged copy or a copy under another name is refused
	// and removed.
	other, _ := OpenLogCache(dir, bytes.Repeat([]byte{8}, LogCacheKeySize))
	if _, ok := other.Get(refA); ok {
		t.Fatal("copy opened with another key")
	}
	if err := c.Put(refA, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cacheName(refA))
	b, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(dir, cacheName(refB)), b, 0o600)
	if _, ok := c.Get(refB); ok {
		t.Fatal("copy accepted under another name")
	}
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o600)
	if _, ok := c.Get(refA); ok {
		t.Fatal("damaged copy accepted")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("damaged copy not removed")
	}
	os.WriteFile(path, b[:10], 0o600)
	if _, ok := c.Get(refA); ok {
		t.Fatal("truncated copy accepted")
	}
	if _, err := OpenLogCache(dir, key[:5]); err == nil {
		t.Fatal("short key accepted")
	}
}

func BenchmarkLogCacheGet(b *testing.B) {
	c, err := OpenLogCache(b.TempDir(), make([]byte, LogCacheKeySize))
	if err != nil {
		b.Fatal(err)
	}
	data, _ := EncodeBatch(benchBatch())
	if err := c.Put([]byte("ref"), data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, ok := c.Get([]byte("ref")); !ok {
			b.Fatal("miss")
		}
	}
}
