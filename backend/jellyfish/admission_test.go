package jellyfish

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs/fserrors"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// TestUploadOverAllowance runs uploads of an account that shares no node
// on eight real providers: 0–3 keep at most 4 KiB for such an account,
// 4–7 admit all. With all eight, the refused shards go to the others and
// the upload succeeds; with only the first four, it fails with the
// providers' plain words (not a bare count of shards), and rclone is told
// not to retry it.
func TestUploadOverAllowance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eight nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 8, provider.TestnetConfig{
		Provider: func(i int, cfg *provider.Config) {
			if i < 4 {
				cfg.Admission = provider.AdmissionConfig{StarterBytes: 4 << 10}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	net, shards := clientOf(t, ctx, nw)
	rt := net.(*clientNet).c.Node().DHT().RoutingTable()
	if err := localnet.WaitFor(ctx, func() bool { return rt.Size() == 8 }); err != nil {
		t.Fatalf("routing table: %d of 8", rt.Size())
	}
	var capped, open []peer.ID
	for i := range 8 {
		if i < 4 {
			capped = append(capped, nw.ID(i))
		} else {
			open = append(open, nw.ID(i))
		}
	}
	newStore := func(nodes []peer.ID, need func(k, m int) int) *objectStore {
		return &objectStore{shards: shards, providers: func(context.Context) ([]peer.ID, error) { return nodes, nil },
			lease: time.Hour, threshold: need, slots: newTransferSlots(maxTransfers, maxHolderTransfers), now: time.Now}
	}
	enc, err := codec.NewEncoder(codec.Params{K: 2, M: 2, SegmentSize: 64 << 10, Compression: codec.CompressNone})
	if err != nil {
		t.Fatal(err)
	}

	// Every provider: the capped ones refuse, the others take the shards.
	data := randomBytes(t, 100_000)
	ref, err := newStore(append(slices.Clone(capped), open...), func(k, m int) int { return k }).Put(ctx, enc, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upload with providers that admit all: %v", err)
	}
	for seg := range ref.Layout.Segments {
		for idx := range ref.Layout.Segments[seg].IDs {
			if h := ref.HolderOf(seg, idx); h != "" && !slices.Contains(open, h) {
				t.Fatalf("segment %d shard %d on capped provider %s", seg, idx, h)
			}
		}
	}
	rc, err := newStore(open, func(k, m int) int { return k }).Open(ctx, ref, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}

	// Only capped providers: the upload fails, saying why.
	_, err = newStore(capped, func(k, m int) int { return k + m }).Put(ctx, enc, bytes.NewReader(randomBytes(t, 100_000)))
	plain := "this provider keeps at most 4 KiB for an account that shares no node (it holds 0 B of yours); run a node (jellyfish node) linked to your account to store more"
	if err == nil || !errors.Is(err, shardstore.ErrOverAllowance) || !strings.Contains(err.Error(), plain) ||
		!strings.Contains(err.Error(), "providers that keep no more for this account refused 4 of them") {
		t.Fatalf("upload refused everywhere: %v", err)
	}
	mapped := mapErr(err)
	if fserrors.ShouldRetry(mapped) || !fserrors.IsNoRetryError(mapped) || !strings.Contains(mapped.Error(), plain) {
		t.Fatalf("at the rclone boundary: %v", mapped)
	}
	t.Logf("the user reads: %v", mapped)
}
