package jfcmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

func readBenchStats(t *testing.T, path string) BenchStats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s BenchStats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return s
}

// TestBenchStatsWriter checks the sum over the stores and that SIGUSR1
// rewrites the file at once (well before the periodic rewrite).
func TestBenchStatsWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), BenchStatsFileName)
	var puts atomic.Int64
	puts.Store(1)
	source := func() []shardstore.PutStats {
		n := puts.Load()
		return []shardstore.PutStats{
			{Puts: n, Bytes: 100 * n, NewShards: 1, NewBytes: 100, InFlight: 1},
			{Puts: 2, Bytes: 50, InFlight: 0},
		}
	}
	before := time.Now().UnixNano()
	w, err := newBenchStatsWriter(path, source)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := readBenchStats(t, path)
	if want := (BenchStats{At: got.At, Puts: 3, Bytes: 150, NewShards: 1, NewBytes: 100, InFlight: 1}); got != want || got.At < before {
		t.Fatalf("first snapshot %+v, want %+v after %d", got, want, before)
	}

	puts.Store(5)
	asked := time.Now().UnixNano()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(benchStatsInterval / 2)
	for {
		if s := readBenchStats(t, path); s.At >= asked {
			if s.Puts != 7 || s.Bytes != 550 {
				t.Fatalf("after SIGUSR1: %+v, want 7 puts of 550 bytes", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGUSR1 did not rewrite the file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
