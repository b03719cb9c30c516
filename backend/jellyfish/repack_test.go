package jellyfish

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
)

// TestRepackAfterDeletes packs many small files, deletes most of them and
// runs CleanUp with no retention: the packs are rewritten, About's Used
// and the shards held drop, and every remaining file reads back here and
// on a new device.
func TestRepackAfterDeletes(t *testing.T) {
	a := newMemAccount(t, 6)
	set := map[string]string{"pack_size": fmt.Sprint(32 << 10), "cleanup_grace": "0s"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	files := map[string][]byte{}
	for i := range 200 {
		name := fmt.Sprintf("d%d/f%03d.bin", i%4, i)
		files[name] = randomBytes(t, 1000+i*10)
		mustPut(t, dev, name, files[name])
	}
	mustFlush(t, dev)
	ctx := context.Background()
	packsBefore := map[ns.PackID]ns.Pack{}
	err := dev.s.log.view().Packs(ctx, func(p ns.Pack) error {
		packsBefore[p.ID] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(packsBefore) < 8 {
		t.Fatalf("%d packs for 200 files in packs of 32 KiB", len(packsBefore))
	}
	usedBefore, _ := mustAbout(t, dev)
	heldBefore := a.net.Held()

	kept := map[string][]byte{}
	i := 0
	for name, data := range files {
		if i%10 == 0 {
			kept[name] = data
		} else {
			mustRemove(t, dev, name)
		}
		i++
	}
	mustFlush(t, dev)
	if used, n := mustAbout(t, dev); used != usedBefore || n != int64(len(kept)) {
		t.Fatalf("About before cleanup: %d bytes in %d files, want %d bytes (packs unchanged) in %d", used, n, usedBefore, len(kept))
	}
	if err := dev.CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	usedAfter, n := mustAbout(t, dev)
	heldAfter := a.net.Held()
	t.Logf("%d packs; Used %d → %d bytes, shards held %d → %d", len(packsBefore), usedBefore, usedAfter, heldBefore, heldAfter)
	if n != int64(len(kept)) || usedAfter*3 > usedBefore {
		t.Fatalf("About after cleanup: %d bytes in %d files, from %d bytes: a tenth of the files is kept", usedAfter, n, usedBefore)
	}
	if heldAfter >= heldBefore {
		t.Fatalf("%d shards held after cleanup, %d before", heldAfter, heldBefore)
	}
	rewritten := 0
	err = dev.s.log.view().Packs(ctx, func(p ns.Pack) error {
		if p.Rev > packsBefore[p.ID].Rev {
			rewritten++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rewritten != len(packsBefore) {
		t.Fatalf("%d of %d packs rewritten", rewritten, len(packsBefore))
	}
	other := a.openDevice(t, t.TempDir(), testOptions(t, set))
	for _, f := range []*Fs{dev, other} {
		if got := listAll(t, f, ""); len(got) != len(kept) {
			t.Fatalf("%d files listed, want %d", len(got), len(kept))
		}
		for name, data := range kept {
			if !bytes.Equal(mustRead(t, f, name), data) {
				t.Fatalf("%s reads back different", name)
			}
		}
	}
	if used, _ := mustAbout(t, other); used != usedAfter {
		t.Fatalf("the new device's About says %d bytes, this one's %d", used, usedAfter)
	}
}
