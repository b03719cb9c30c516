package devices_test

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// packStatus returns the "packs" part of `backend status`.
func packStatus(t *testing.T, ctx context.Context, f fs.Fs) map[string]int64 {
	t.Helper()
	out, err := f.Features().Command(ctx, "status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out.(map[string]any)["packs"].(map[string]int64)
}

func used(t *testing.T, ctx context.Context, f fs.Fs) int64 {
	t.Helper()
	u, err := f.Features().About(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return *u.Used
}

func backendCmd(t *testing.T, ctx context.Context, f fs.Fs, name string) {
	t.Helper()
	if _, err := f.Features().Command(ctx, name, nil, nil); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestPacks: files between inline_max and pack_max are packed into a few
// shared objects, readable before and after the pack is stored, by this
// device and others; deleting most of a pack's files and cleaning up
// rewrites it with only the files still there and frees the rest, and
// deleting them all drops it.
func TestPacks(t *testing.T) {
	net := jftest.StartNetwork(t, 6)
	acct := net.CreateAccount(t, "pia")
	conf := useDevices(t, acct, map[string]string{"data_shards": "3", "parity_shards": "3", "pack_size": "256Ki", "cleanup_grace": "0s"}, "a", "b", "c")
	ctx := context.Background()
	a := device(t, ctx, conf, "a")

	rng := mrand.New(mrand.NewPCG(1, 2))
	want := map[string]string{}
	const files = 40
	for i := range files {
		data := randomData(rng, 10<<10+rng.IntN(20<<10))
		name := fmt.Sprintf("d%d/f%02d.bin", i%4, i)
		put(t, ctx, a, name, string(data))
		want[name] = string(data)
	}
	big := bytes.Repeat([]byte("not packed "), 200<<10) // over pack_max
	put(t, ctx, a, "big.txt", string(big))
	want["big.txt"] = string(big)

	// Read back by the writer before and after the flush stores the pack.
	if got := tree(t, ctx, a); !equal(got, want) {
		t.Fatalf("before flush: %d files, want %d", len(got), len(want))
	}
	backendCmd(t, ctx, a, "flush")
	st := packStatus(t, ctx, a)
	// About 800 KiB of files in packs of 256 KiB: a handful of packs, not
	// one object per file.
	if st["stored"] < 2 || st["stored"] > 6 || st["waiting_bytes"] != 0 {
		t.Fatalf("packs after flush: %v", st)
	}
	if got := tree(t, ctx, a); !equal(got, want) {
		t.Fatal("after flush: contents differ")
	}
	bdev := device(t, ctx, conf, "b")
	if got := tree(t, ctx, bdev); !equal(got, want) {
		t.Fatalf("device b: %d files, want %d", len(got), len(want))
	}

	// Delete three quarters of the packed files and clean up: every pack
	// is rewritten smaller, and the space used shrinks.
	before := used(t, ctx, a)
	for i := range files {
		if i%4 == 3 {
			continue
		}
		name := fmt.Sprintf("d%d/f%02d.bin", i%4, i)
		o, err := a.NewObject(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		delete(want, name)
	}
	if err := a.Features().CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	after := used(t, ctx, a)
	if after*2 > before {
		t.Fatalf("space used %d before cleanup, %d after: packs not rewritten", before, after)
	}
	if got := tree(t, ctx, a); !equal(got, want) {
		t.Fatal("after repacking: contents differ")
	}
	// Another device that loaded the old revisions catches up and reads
	// the kept files from the new ones; a fresh one loads them directly.
	poll(t, ctx, bdev)
	if got := tree(t, ctx, bdev); !equal(got, want) {
		t.Fatalf("device b after repacking: %d files, want %d", len(got), len(want))
	}
	if got := tree(t, ctx, device(t, ctx, conf, "c")); !equal(got, want) {
		t.Fatalf("device c after repacking: %d files, want %d", len(got), len(want))
	}

	// Deleting the rest drops the packs altogether.
	for name := range want {
		if name == "big.txt" {
			continue
		}
		o, err := a.NewObject(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		delete(want, name)
	}
	if err := a.Features().CleanUp(ctx); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	if st := packStatus(t, ctx, a); st["stored"] != 0 || st["stored_bytes"] != 0 {
		t.Fatalf("packs after deleting every packed file: %v", st)
	}
	if got := tree(t, ctx, a); !equal(got, want) {
		t.Fatal("after dropping the packs: contents differ")
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// TestSmallPacksMerge: a device that writes a few files between flushes
// stores a small pack each time; cleanup merges them into one object, and
// every device still reads every file. A second cleanup leaves the merged
// object alone.
func TestSmallPacksMerge(t *testing.T) {
	net := jftest.StartNetwork(t, 6)
	acct := net.CreateAccount(t, "max")
	conf := useDevices(t, acct, map[string]string{"data_shards": "3", "parity_shards": "3", "pack_size": "256Ki", "cleanup_grace": "0s"}, "a", "b")
	ctx := context.Background()
	a := device(t, ctx, conf, "a")
	rng := mrand.New(mrand.NewPCG(3, 4))
	want := map[string]string{}
	for round := range 5 {
		for i := range 2 {
			data := randomData(rng, 10<<10+rng.IntN(10<<10))
			name := fmt.Sprintf("r%d/f%d.bin", round, i)
			put(t, ctx, a, name, string(data))
			want[name] = string(data)
		}
		backendCmd(t, ctx, a, "flush")
	}
	if st := packStatus(t, ctx, a); st["stored"] != 5 || st["objects"] != 5 {
		t.Fatalf("before cleanup: %v, want 5 packs in 5 objects", st)
	}
	if err := a.Features().CleanUp(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	st := packStatus(t, ctx, a)
	if st["stored"] != 5 || st["objects"] != 1 {
		t.Fatalf("after cleanup: %v, want 5 packs in 1 object", st)
	}
	if got := tree(t, ctx, a); !equal(got, want) {
		t.Fatal("after merging: contents differ")
	}
	if got := tree(t, ctx, device(t, ctx, conf, "b")); !equal(got, want) {
		t.Fatal("device b after merging: contents differ")
	}
	usedAfter := used(t, ctx, a)
	if err := a.Features().CleanUp(ctx); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	if st := packStatus(t, ctx, a); st["objects"] != 1 || used(t, ctx, a) != usedAfter {
		t.Fatalf("the second cleanup rewrote the merged object: %v", st)
	}
}

// randomData returns n bytes from rng.
func randomData(rng *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
