package shardstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// proveAll proves and verifies a few ranges of a held shard.
func proveAll(t *testing.T, d *Disk, id codec.ShardID, size int64) {
	t.Helper()
	for _, r := range [][2]int64{{0, 1}, {size / 3, min(size-size/3, 40_000)}, {size - 1, 1}} {
		proof, err := d.Prove(context.Background(), id, r[0], r[1])
		if err != nil {
			t.Fatalf("prove %d+%d: %v", r[0], r[1], err)
		}
		if _, err := codec.VerifyRange(id, proof, r[0], r[1]); err != nil {
			t.Fatalf("proof of %d+%d: %v", r[0], r[1], err)
		}
	}
}

// A shard is stored without a tree file; the first proof builds and caches
// it, and a store restarted without it (lost or never built) still loads
// the shard and proves it.
func TestProofOfShardStoredWithoutTree(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	rng := rand.New(rand.NewPCG(30, 30))
	b, id := newShard(rng, 200_000)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	_, _, treeName, _ := shardPath(id)
	treePath := filepath.Join(dir, treeName)
	if _, err := os.Lstat(treePath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree file after put: %v", err)
	}

	// Restart before any proof: the shard loads without its tree.
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	if info, err := d.Stat(context.Background(), id); err != nil || info.Size != 200_000 {
		t.Fatalf("Stat after restart: %+v %v", info, err)
	}
	proveAll(t, d, id, 200_000)
	if fi, err := os.Stat(treePath); err != nil || fi.Size() != int64(treeFileSize(200_000)) {
		t.Fatalf("tree file after the first proof: %v %v", fi, err)
	}

	// A cached tree survives a restart; a removed one is rebuilt.
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	if _, err := os.Stat(treePath); err != nil {
		t.Fatalf("tree file dropped on open: %v", err)
	}
	proveAll(t, d, id, 200_000)
	d.Close()
	if err := os.Remove(treePath); err != nil {
		t.Fatal(err)
	}
	d = openStore(t, dir, WithClock(clk.Now))
	proveAll(t, d, id, 200_000)
	if u := d.Usage(); u.Shards != 1 || u.Used != 200_000 {
		t.Fatalf("usage %+v", u)
	}
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
}

// A tree file that is damaged in any way is detected, rebuilt from the
// shard, and never used for a proof.
func TestDamagedTreeFileIsRebuilt(t *testing.T) {
	const size = 300_000
	dir := t.TempDir()
	clk := &fakeClock{now: t0}
	d := openStore(t, dir, WithClock(clk.Now))
	rng := rand.New(rand.NewPCG(31, 31))
	b, id := newShard(rng, size)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	proveAll(t, d, id, size)
	_, _, treeName, _ := shardPath(id)
	treePath := filepath.Join(dir, treeName)
	good, err := os.ReadFile(treePath)
	if err != nil {
		t.Fatal(err)
	}
	// Another shard of the same size has a tree file that passes its own
	// checksum.
	other, otherID := newShard(rng, size)
	otherTree, _ := codec.Tree(other)
	otherFile := append([]byte(treeMagic+"\x01\x00"), otherTree...)
	otherFile = appendCRC(otherFile)
	flip := func(i int) []byte {
		c := bytes.Clone(good)
		c[i] ^= 0x10
		return c
	}
	rawTree, _ := codec.Tree(b)
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"one byte short", good[:len(good)-1]},
		{"one byte long", append(bytes.Clone(good), 0)},
		{"flipped magic", flip(1)},
		{"flipped size", flip(treeHeaderSize)},
		{"flipped top node", flip(treeHeaderSize + 8 + 3)},
		{"flipped deep node", flip(len(good) - 40)},
		{"flipped checksum", flip(len(good) - 1)},
		{"tree without header (older layout)", rawTree},
		{"another shard's tree", otherFile},
	} {
		if err := os.WriteFile(treePath, c.file, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := parseTree(c.file, id, size); err == nil {
			t.Fatalf("%s: accepted as a tree file", c.name)
		}
		proveAll(t, d, id, size)
		got, err := os.ReadFile(treePath)
		if err != nil || !bytes.Equal(got, good) {
			t.Fatalf("%s: tree file not rebuilt (%v)", c.name, err)
		}
	}
	if _, err := parseTree(otherFile, otherID, size); err != nil {
		t.Fatalf("the other shard's tree file is not valid for it: %v", err)
	}

	// On open, a tree file of the wrong length is dropped, the shard kept.
	if err := os.WriteFile(treePath, good[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = openStore(t, dir, WithClock(clk.Now))
	if _, err := os.Lstat(treePath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("torn tree file kept on open: %v", err)
	}
	proveAll(t, d, id, size)
}

func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// A shard whose stored bytes rotted before its tree was built gets no
// proof and no tree file: Prove reports ErrIntegrity.
func TestProveOfDamagedShardFails(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	b, id := newShard(rand.New(rand.NewPCG(32, 32)), 100_000)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	_, data, treeName, _ := shardPath(id)
	rotten := bytes.Clone(b)
	rotten[77_777] ^= 1
	if err := os.WriteFile(filepath.Join(dir, data), rotten, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prove(context.Background(), id, 0, 10); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("prove of a rotten shard: %v, want ErrIntegrity", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, treeName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree file of a rotten shard: %v", err)
	}
	// A shard cut short on disk as well.
	if err := os.WriteFile(filepath.Join(dir, data), b[:50_000], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prove(context.Background(), id, 0, 10); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("prove of a truncated shard: %v, want ErrIntegrity", err)
	}
}

// Many first proofs of one shard at once all succeed and leave one tree
// file and no temporary file.
func TestConcurrentFirstProofs(t *testing.T) {
	const size = 1<<20 + 5
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	b, id := newShard(rand.New(rand.NewPCG(33, 33)), size)
	put(t, d, ownerA, b, id, t0.Add(time.Hour))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(i) * (size / 8)
			proof, err := d.Prove(context.Background(), id, off, 1000)
			if err == nil {
				_, err = codec.VerifyRange(id, proof, off, 1000)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
	if n := len(storeFiles(t, filepath.Join(dir, shardsDir))); n != 3 {
		t.Fatalf("%d shard files, want data, metadata and tree", n)
	}
}
