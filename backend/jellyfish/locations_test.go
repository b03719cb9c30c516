package jellyfish

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/codec"
)

// TestRecordedLocations loses most shards of a file's segment, puts copies
// on nodes the file's reference does not name and records them with
// recordLocations: after a flush the file reads back here and on a new
// device (locations from the log), and after a checkpoint on a third
// device that has them from the tree alone.
func TestRecordedLocations(t *testing.T) {
	a := newMemAccount(t, 8)
	set := map[string]string{"pack_max": "0", "checkpoint_every": "2"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	data := randomBytes(t, 3000)
	mustPut(t, dev, "docs/report.pdf", data)
	mustFlush(t, dev) // batch 1

	ctx := context.Background()
	ref, err := dev.s.objectOf(ctx, entryContent(t, dev, "docs/report.pdf"))
	if err != nil || ref == nil {
		t.Fatalf("reference: %v", err)
	}
	if len(ref.Layout.Segments) != 1 || ref.Layout.K != 2 || ref.Layout.Total() != 4 {
		t.Fatalf("layout %v: the test wants one segment of 2+2", ref.Layout)
	}
	named := map[peer.ID]bool{}
	for _, n := range ref.Nodes {
		named[n] = true
	}
	var spare []peer.ID
	for _, n := range a.net.Nodes() {
		if !named[n] {
			spare = append(spare, n)
		}
	}
	// Three of the four shards move to nodes the reference does not name:
	// its holders alone are one short of k.
	shards := a.net.Shards(nil)
	var locs []ns.Location
	for i, id := range ref.Layout.Segments[0].IDs[:3] {
		rc, size, err := shards.Get(ctx, ref.HolderOf(0, i), id)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		a.net.Drop(id)
		to := spare[i]
		if _, err := shards.PutReader(ctx, to, id, size, bytes.NewReader(b), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		locs = append(locs, ns.Location{Shard: ns.ShardID(id), Holder: []byte(to)})
	}
	if _, err := readErr(dev, "docs/report.pdf"); err == nil {
		t.Fatal("the file reads with 1 of its 2 needed shards where its reference says")
	}
	dev.s.recordLocations(locs)
	mustFlush(t, dev) // batch 2: the locations
	if got, err := readErr(dev, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after recording the locations: %v", err)
	}
	fromLog := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if got, err := readErr(fromLog, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a new device, with the locations in the log: %v", err)
	}

	mustPut(t, dev, "docs/other.txt", []byte("x"))
	mustFlush(t, dev) // checkpoint of batches 1-2, then batch 3
	if cp := dev.s.log.own.cp; cp == nil || cp.Seq != 2 {
		t.Fatalf("checkpoint %+v, want one of batch 2", cp)
	}
	fromTree := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if fromTree.s.log.baseCP == nil || len(fromTree.s.log.logL.AllLocations()) != 0 {
		t.Fatal("the third device did not load the locations from a checkpoint")
	}
	for _, l := range locs {
		hs, err := fromTree.s.log.view().Locations(ctx, l.Shard)
		if err != nil || !slices.ContainsFunc(hs, func(h []byte) bool { return bytes.Equal(h, l.Holder) }) {
			t.Fatalf("the checkpoint does not hold shard %s's location: %v", codec.ShardID(l.Shard).Short(), err)
		}
	}
	if got, err := readErr(fromTree, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a new device, with the locations in the checkpoint: %v", err)
	}
}
