package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
	"github.com/jellyfish-p2p/jellyfish/codec"
)

// randomBytes returns n incompressible bytes.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// readErr reads remote whole, returning the error instead of failing.
func readErr(f *Fs, remote string) ([]byte, error) {
	ctx := context.Background()
	o, err := f.NewObject(ctx, remote)
	if err != nil {
		return nil, err
	}
	rc, err := o.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// mustRemove deletes remote.
func mustRemove(t testing.TB, f *Fs, remote string) {
	t.Helper()
	ctx := context.Background()
	o, err := f.NewObject(ctx, remote)
	if err != nil {
		t.Fatalf("%s: %v", remote, err)
	}
	if err := o.Remove(ctx); err != nil {
		t.Fatalf("remove %s: %v", remote, err)
	}
}

// mustAbout returns About's Used and Objects.
func mustAbout(t testing.TB, f *Fs) (used, objects int64) {
	t.Helper()
	u, err := f.About(context.Background())
	if err != nil {
		t.Fatalf("about: %v", err)
	}
	return *u.Used, *u.Objects
}

// entryContent returns the content field of the entry at remote.
func entryContent(t testing.TB, f *Fs, remote string) []byte {
	t.Helper()
	e, err := f.s.log.view().Get(context.Background(), f.full(remote))
	if err != nil || e == nil {
		t.Fatalf("entry %s: %v %v", remote, e, err)
	}
	return e.Content
}

// shardsHeld returns how many of the objects' shards some node still holds.
func shardsHeld(a *memAccount, refs ...*ObjRef) (held, all int) {
	for _, r := range refs {
		for _, seg := range r.Layout.Segments {
			for _, id := range seg.IDs {
				all++
				if len(a.net.Holders(id)) > 0 {
					held++
				}
			}
		}
	}
	return held, all
}

// TestLargeFileIndirectReference stores a file of many segments whose
// reference is over maxDirectRef: its entry holds an indirect reference,
// it reads back here and on another device, About counts its shards and
// the holder object's, and CleanUp after deleting it frees both objects'
// shards.
func TestLargeFileIndirectReference(t *testing.T) {
	a := newMemAccount(t, 30)
	set := map[string]string{"segment_size": "4096", "data_shards": "10", "parity_shards": "20", "pack_max": "0", "cleanup_grace": "0s"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	heldBefore := a.net.Held()
	data := randomBytes(t, 12*4096+100) // 13 segments of 30 shards
	mustPut(t, dev, "big/file.bin", data)
	mustFlush(t, dev)
	heldWith := a.net.Held()

	ctx := context.Background()
	content := entryContent(t, dev, "big/file.bin")
	c, err := objref.Parse(content)
	if err != nil || c.Kind != objref.KindIndirect {
		t.Fatalf("content of kind %v (%v), want an indirect reference", c.Kind, err)
	}
	holder := c.Ref
	ref, err := dev.s.objectOf(ctx, content)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(direct) <= maxDirectRef || len(ref.Layout.Segments) != 13 {
		t.Fatalf("reference of %d bytes for %d segments: the test wants one over %d", len(direct), len(ref.Layout.Segments), maxDirectRef)
	}
	if len(content) > 1024 {
		t.Fatalf("indirect content of %d bytes", len(content))
	}
	if !bytes.Equal(mustRead(t, dev, "big/file.bin"), data) {
		t.Fatal("the file reads back different")
	}
	other := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if !bytes.Equal(mustRead(t, other, "big/file.bin"), data) {
		t.Fatal("another device reads the file different")
	}

	want := ref.StoredBytes() + holder.StoredBytes()
	for _, f := range []*Fs{dev, other} {
		if used, files := mustAbout(t, f); used != want || files != 1 {
			t.Fatalf("About: %d bytes in %d files, want %d (file %d + its reference's object %d) in 1", used, files, want, ref.StoredBytes(), holder.StoredBytes())
		}
	}
	if held, all := shardsHeld(a, ref, holder); held != all {
		t.Fatalf("%d of the %d shards stored", held, all)
	}

	mustRemove(t, dev, "big/file.bin")
	mustFlush(t, dev)
	if err := dev.CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if held, all := shardsHeld(a, ref, holder); held != 0 {
		t.Fatalf("cleanup left %d of the %d shards of the file and its reference's object", held, all)
	}
	if used, files := mustAbout(t, dev); used != 0 || files != 0 {
		t.Fatalf("About after deleting: %d bytes in %d files", used, files)
	}
	t.Logf("shards held: %d before, %d with the file (%d its own, %d its reference's), %d after cleanup (log batches)",
		heldBefore, heldWith, len(ref.Shards()), len(holder.Shards()), a.net.Held())
	if a.net.Held() > heldWith-len(ref.Shards())-len(holder.Shards())+16 {
		t.Fatalf("%d shards held after cleanup", a.net.Held())
	}
}

// TestThreeHundredProviders stores, on 300 nodes, a file and a pack whose
// shards land on more than 255 distinct nodes (the old one-byte holder
// index): their references encode and decode, and both read back here,
// on a device reading the log and on one loading a checkpoint (where the
// pack's reference of some 90 KB is one value).
func TestThreeHundredProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 12 MiB on 300 nodes")
	}
	a := newMemAccount(t, 300)
	set := map[string]string{"segment_size": fmt.Sprint(128 << 10), "data_shards": "10", "parity_shards": "20", "checkpoint_every": "1"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	file := randomBytes(t, 12*128<<10) // 12 segments × 30 shards: over all 300 nodes
	mustPut(t, dev, "file.bin", file)
	packed := map[string][]byte{}
	for i := range 40 {
		name := fmt.Sprintf("packed/%02d.bin", i)
		packed[name] = randomBytes(t, 240<<10)
		mustPut(t, dev, name, packed[name])
	}
	mustFlush(t, dev)

	ctx := context.Background()
	fileRef, err := dev.s.objectOf(ctx, entryContent(t, dev, "file.bin"))
	if err != nil || fileRef == nil {
		t.Fatalf("file reference: %v", err)
	}
	m, ok, err := parseMember(entryContent(t, dev, "packed/00.bin"))
	if !ok || err != nil {
		t.Fatalf("packed/00.bin is not packed: %v", err)
	}
	for name := range packed {
		if n, _, _ := parseMember(entryContent(t, dev, name)); n.pack != m.pack {
			t.Fatalf("%s is in another pack: the test wants one pack", name)
		}
	}
	rec, err := dev.s.log.view().Pack(ctx, m.pack)
	if err != nil || rec == nil {
		t.Fatalf("pack record: %v", err)
	}
	if rec.Size <= 9<<20 {
		t.Fatalf("pack of %d bytes, want over 9 MiB", rec.Size)
	}
	packRef, err := UnmarshalObjRef(rec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]*ObjRef{"file": fileRef, "pack": packRef} {
		if len(r.Nodes) <= 255 {
			t.Fatalf("the %s's shards are on %d nodes, want over 255", what, len(r.Nodes))
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("%s reference: %v", what, err)
		}
		back, err := UnmarshalObjRef(b)
		if err != nil {
			t.Fatalf("%s reference of %d nodes does not decode: %v", what, len(r.Nodes), err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("%s reference changes in a round trip", what)
		}
		var last codec.ShardID
		for _, sh := range r.Shards() {
			last = sh.ID
		}
		if len(a.net.Holders(last)) == 0 {
			t.Fatalf("the %s's last shard is not held", what)
		}
		t.Logf("%s: %d segments on %d nodes, reference of %d bytes", what, len(r.Layout.Segments), len(r.Nodes), len(b))
	}

	other := a.openDevice(t, t.TempDir(), testOptions(t, set))
	mustPut(t, dev, "after.txt", []byte("after the checkpoint"))
	mustFlush(t, dev)
	if dev.s.log.own.cp == nil {
		t.Fatal("no checkpoint")
	}
	fromTree := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if fromTree.s.log.baseCP == nil || fromTree.s.log.logL.Pack(m.pack) != nil {
		t.Fatal("a new device did not load the pack record from the checkpoint")
	}
	for _, f := range []*Fs{dev, other, fromTree} {
		if !bytes.Equal(mustRead(t, f, "file.bin"), file) {
			t.Fatal("file.bin reads back different")
		}
		for name, want := range packed {
			if !bytes.Equal(mustRead(t, f, name), want) {
				t.Fatalf("%s reads back different", name)
			}
		}
	}
}

// TestCopyOfLargeFileSurvivesCleanUp copies a file with an indirect
// reference server-side and deletes the original: CleanUp keeps the
// shards both entries share, the copy reads back on another device, and
// deleting the copy too lets CleanUp free them.
func TestCopyOfLargeFileSurvivesCleanUp(t *testing.T) {
	a := newMemAccount(t, 30)
	set := map[string]string{"segment_size": "4096", "data_shards": "10", "parity_shards": "20", "pack_max": "0", "cleanup_grace": "0s"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	data := randomBytes(t, 12*4096)
	mustPut(t, dev, "orig.bin", data)
	ctx := context.Background()
	src, err := dev.NewObject(ctx, "orig.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Copy(ctx, src, "copies/copy.bin"); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, dev)
	content := entryContent(t, dev, "copies/copy.bin")
	c, err := objref.Parse(content)
	if err != nil || c.Kind != objref.KindIndirect {
		t.Fatalf("content of kind %v (%v), want an indirect reference", c.Kind, err)
	}
	ref, err := dev.s.objectOf(ctx, content)
	if err != nil {
		t.Fatal(err)
	}
	mustRemove(t, dev, "orig.bin")
	mustFlush(t, dev)
	if err := dev.CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if held, all := shardsHeld(a, ref, c.Ref); held != all {
		t.Fatalf("cleanup deleted %d of the %d shards the copy uses", all-held, all)
	}
	other := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if !bytes.Equal(mustRead(t, other, "copies/copy.bin"), data) {
		t.Fatal("the copy reads back different")
	}
	mustRemove(t, dev, "copies/copy.bin")
	mustFlush(t, dev)
	if err := dev.CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if held, all := shardsHeld(a, ref, c.Ref); held != 0 {
		t.Fatalf("cleanup left %d of the %d shards with both entries deleted", held, all)
	}
}

// TestLargePackReferenceInCheckpoint stores a pack of many small segments
// (segment_size 4 KiB, a valid setting, makes packs' segments as small)
// on 30 shards each: its reference is over a megabyte, more than a
// checkpoint value may hold, yet checkpoints must go on being written and
// a new device must load from one and read the packed files.
func TestLargePackReferenceInCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("stores a pack of 1,200 segments")
	}
	a := newMemAccount(t, 30)
	set := map[string]string{"segment_size": "4096", "data_shards": "10", "parity_shards": "20", "checkpoint_every": "1"}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	packed := map[string][]byte{}
	for i := range 24 {
		name := fmt.Sprintf("packed/%02d.bin", i)
		packed[name] = randomBytes(t, 200<<10)
		mustPut(t, dev, name, packed[name])
	}
	mustFlush(t, dev)
	ctx := context.Background()
	m, ok, err := parseMember(entryContent(t, dev, "packed/00.bin"))
	if !ok || err != nil {
		t.Fatalf("packed/00.bin is not packed: %v", err)
	}
	rec, err := dev.s.log.view().Pack(ctx, m.pack)
	if err != nil || rec == nil {
		t.Fatalf("pack record: %v", err)
	}
	t.Logf("pack of %d bytes, reference of %d bytes", rec.Size, len(rec.Ref))
	mustPut(t, dev, "after.txt", []byte("after"))
	mustFlush(t, dev)
	if dev.s.log.own.cp == nil {
		t.Fatalf("no checkpoint written with a pack reference of %d bytes in the log", len(rec.Ref))
	}
	fromTree := a.openDevice(t, t.TempDir(), testOptions(t, set))
	if fromTree.s.log.baseCP == nil {
		t.Fatal("a new device did not load from a checkpoint")
	}
	for name, want := range packed {
		if !bytes.Equal(mustRead(t, fromTree, name), want) {
			t.Fatalf("%s reads back different", name)
		}
	}
}
