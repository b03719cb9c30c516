package jfcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// BenchStatsFileName is the file `jellyfish testnet --bench-stats` keeps in
// its folder: BenchStats as JSON, rewritten atomically every
// benchStatsInterval and at once on SIGUSR1.
const BenchStatsFileName = "bench-stats.json"

// benchStatsInterval is how often the stats file is rewritten unasked.
const benchStatsInterval = time.Second

// BenchStats sums the put counters of every node's shard store
// (shardstore.PutStats) since the testnet started.
type BenchStats struct {
	// At is when the counters were read, in Unix nanoseconds, taken before
	// reading them: a snapshot with At after a client process exited and
	// InFlight zero counts every put that client's puts caused.
	At        int64 `json:"at_unix_nano"`
	Puts      int64 `json:"puts"`
	Bytes     int64 `json:"bytes"`
	NewShards int64 `json:"new_shards"`
	NewBytes  int64 `json:"new_bytes"`
	InFlight  int64 `json:"in_flight"`
}

func init() {
	testnetReadyHooks = append(testnetReadyHooks, startBenchStats)
}

// addBenchStatsFlag registers the hidden --bench-stats flag of testnet.
func addBenchStatsFlag(c *cobra.Command, v *bool) {
	c.Flags().BoolVar(v, "bench-stats", false, "BENCHMARKS ONLY: keep DIR/"+BenchStatsFileName+" up to date with the puts the nodes' shard stores accepted (every second, and at once on SIGUSR1)")
	_ = c.Flags().MarkHidden("bench-stats")
}

// startBenchStats writes the stats file once and keeps it up to date
// until the network closes, when --bench-stats is set.
func startBenchStats(_ context.Context, r *TestnetReady) error {
	if !r.BenchStats || r.Network == nil || r.Fleet == nil {
		return nil
	}
	n := r.Network.Len()
	w, err := newBenchStatsWriter(filepath.Join(r.Dir, BenchStatsFileName), func() []shardstore.PutStats {
		out := make([]shardstore.PutStats, 0, n)
		for i := range n {
			if p := r.Fleet.Provider(i); p != nil {
				out = append(out, p.Store().PutStats())
			}
		}
		return out
	})
	if err != nil {
		return err
	}
	// Node 0 closes the writer when the network closes.
	return r.Network.Node(0).Attach(w)
}

// benchStatsWriter rewrites the stats file from its source of counters.
type benchStatsWriter struct {
	path   string
	source func() []shardstore.PutStats
	sig    chan os.Signal
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// newBenchStatsWriter writes path once, then again every
// benchStatsInterval and on every SIGUSR1 until Close.
func newBenchStatsWriter(path string, source func() []shardstore.PutStats) (*benchStatsWriter, error) {
	w := &benchStatsWriter{path: path, source: source, sig: make(chan os.Signal, 1), done: make(chan struct{})}
	if err := w.write(); err != nil {
		return nil, err
	}
	signal.Notify(w.sig, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	return w, nil
}

func (w *benchStatsWriter) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(benchStatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.sig:
		}
		// A failed write leaves the previous snapshot; readers see its
		// old At and wait for the next.
		_ = w.write()
	}
}

// write takes a snapshot and replaces the file with it.
func (w *benchStatsWriter) write() error {
	s := BenchStats{At: time.Now().UnixNano()}
	for _, p := range w.source() {
		s.Puts += p.Puts
		s.Bytes += p.Bytes
		s.NewShards += p.NewShards
		s.NewBytes += p.NewBytes
		s.InFlight += p.InFlight
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := w.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench stats: %w", err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		return fmt.Errorf("bench stats: %w", err)
	}
	return nil
}

// Close stops the writer and waits for it. The file stays.
func (w *benchStatsWriter) Close() error {
	w.once.Do(func() {
		signal.Stop(w.sig)
		w.cancel()
		<-w.done
	})
	return nil
}
