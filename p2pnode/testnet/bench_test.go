package testnet_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
)

// BenchmarkBootstrap50 starts a 50-node network and reports the time until
// every routing table holds at least 10 peers, the heap and goroutines per
// node once it is up, and the time to read a record published by node 0
// from node 49. Run it with
//
//	go test ./p2pnode/testnet -run '^$' -bench Bootstrap50 -benchtime 1x
func BenchmarkBootstrap50(b *testing.B) {
	const n = 50
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		goBefore := runtime.NumGoroutine()

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		nw, err := localnet.Start(ctx, b.TempDir(), n, localnet.Options{MinRoutingTable: 10})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		up := time.Since(start)

		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		goAfter := runtime.NumGoroutine()

		minRT, maxRT := n, 0
		for i := range n {
			s := nw.Node(i).DHT().RoutingTable().Size()
			minRT, maxRT = min(minRT, s), max(maxRT, s)
		}

		owner, reader := nw.Node(0), nw.Node(n-1)
		value, err := owner.PublishNodeRecord(ctx, nodeInfo())
		if err != nil {
			b.Fatal(err)
		}
		readStart := time.Now()
		_, got, err := reader.GetRecord(ctx, recordKey(owner))
		if err != nil || !bytes.Equal(got, value) {
			b.Fatalf("node %d cannot read node 0's record: %v", n-1, err)
		}
		read := time.Since(readStart)

		b.ReportMetric(up.Seconds(), "s-to-bootstrap")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n/(1<<20), "MiB-heap/node")
		b.ReportMetric(float64(after.Sys-before.Sys)/n/(1<<20), "MiB-sys/node")
		b.ReportMetric(float64(goAfter-goBefore)/n, "goroutines/node")
		b.ReportMetric(float64(read.Milliseconds()), "ms-get")
		b.Logf("%d nodes up in %v; routing tables %d..%d peers; get %v", n, up, minRT, maxRT, read)

		if err := nw.Close(); err != nil {
			b.Error(err)
		}
		cancel()
	}
}
