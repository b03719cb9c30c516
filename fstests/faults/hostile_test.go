package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rclone/rclone/fs/operations"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// garbageStore is a provider's shard store that keeps what it is given but
// serves garbage: each shard's real header followed by random bytes, of
// the right length, so only the shard's ID exposes it.
type garbageStore struct {
	*shardstore.Disk
	gets atomic.Int64
}

func (g *garbageStore) Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error) {
	rc, size, err := g.Disk.Get(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	b := make([]byte, size)
	// The store's reader fails at the end on a bad file; the prefix is
	// all this needs.
	if _, err := io.ReadFull(rc, b[:min(size, codec.HeaderSize)]); err != nil {
		return nil, 0, err
	}
	rand.Read(b[min(size, codec.HeaderSize):])
	g.gets.Add(1)
	return io.NopCloser(bytes.NewReader(b)), size, nil
}

// TestHostileHolder turns the node holding the first data shard of every
// segment of a file into one that answers every get with garbage of the
// right length behind a valid header. Reads, in this process and in a new
// one, still return the file byte for byte, from the other holders.
func TestHostileHolder(t *testing.T) {
	const segments = 3
	e := newEnv(t, 8, map[string]string{"segment_size": "1M"})
	ctx := context.Background()
	f := e.newFs(ctx)
	data := randomBytes(t, (segments-1)<<20+999)
	o, err := operations.Rcat(ctx, f, "file.bin", io.NopCloser(bytes.NewReader(data)), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Features().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	bySeg := segmentShards(t, e, segments)
	hostile := bySeg[0][0].node
	for seg := range bySeg {
		if bySeg[seg][0].node != hostile {
			t.Fatalf("shard 0 of segment %d is on node %d, of segment 0 on node %d", seg, bySeg[seg][0].node, hostile)
		}
	}
	g := &garbageStore{Disk: e.net.Fleet.Provider(hostile).Store()}
	// Registering the service replaces the provider's handler of the
	// shard protocol on the node's host.
	svc, err := shardproto.NewService(e.net.Net.Node(hostile).Host(), g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })

	got, err := readAll(ctx, o)
	if err != nil {
		t.Fatalf("read in this process with a hostile holder: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes in this process that differ from the %d written", len(got), len(data))
	}
	inProcess := g.gets.Load()
	if inProcess == 0 {
		t.Fatal("the read never asked the hostile holder, so it proves nothing")
	}
	out, stderr, err := e.run("cat", remoteName+":file.bin")
	if err != nil {
		t.Fatalf("cat with a hostile holder: %v\n%s", err, stderr)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("cat read %d bytes that differ from the %d written", len(out), len(data))
	}
	if g.gets.Load() == inProcess {
		t.Fatal("cat never asked the hostile holder, so it proves nothing")
	}
	t.Logf("the hostile holder served %d garbage shards", g.gets.Load())
}
