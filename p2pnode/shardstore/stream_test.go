package shardstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"lukechampine.com/blake3"
)

// The tree a store builds from a stored shard, when the first proof needs
// it, must be exactly the tree codec.Tree computes, at every size around
// leaf and chunk boundaries; the put itself stores no tree.
func TestBuiltTreeMatchesCodec(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	rng := rand.New(rand.NewPCG(20, 20))
	for _, n := range []int{1, 1023, 1024, codec.LeafSize - 1, codec.LeafSize, codec.LeafSize + 1,
		ChunkSize - 1, ChunkSize, ChunkSize + 1, 4*ChunkSize + 5, treeReadBuf + 1, 3<<20 + 17} {
		b, id := newShard(rng, n)
		// A reader handing out odd-sized pieces, as a network stream does.
		if err := d.Put(context.Background(), ownerA, id, int64(n), slowReader{bytes.NewReader(b)}, t0.Add(time.Hour)); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		_, _, treeName, _ := shardPath(id)
		if _, err := os.Lstat(filepath.Join(dir, treeName)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%d bytes: tree file after a put: %v", n, err)
		}
		if _, _, err := d.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if proof, err := d.Prove(context.Background(), id, int64(n/2), 1); err != nil {
			t.Fatal(err)
		} else if _, err := codec.VerifyRange(id, proof, int64(n/2), 1); err != nil {
			t.Fatalf("%d bytes: proof: %v", n, err)
		}
		file, err := os.ReadFile(filepath.Join(dir, treeName))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTree(file, id, int64(n))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		want, wantID := codec.Tree(b)
		if wantID != id || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: cached tree differs from codec.Tree", n)
		}
	}
}

// genShard is a shard of n pseudo-random bytes that is generated while it
// is read, never held in memory.
func genShard(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func genID(t *testing.T, seed uint64, n int64) codec.ShardID {
	t.Helper()
	h := blake3.New(32, nil)
	if _, err := io.Copy(h, genShard(seed, n)); err != nil {
		t.Fatal(err)
	}
	var id codec.ShardID
	h.Sum(id[:0])
	return id
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// A put streams its body to disk: a 48 MiB shard (far beyond what a put
// used to buffer) is stored while the store allocates only its chunks,
// and the stored bytes verify.
func TestLargePutStreamsInBoundedMemory(t *testing.T) {
	const size = 48 << 20
	dir := t.TempDir()
	d := openStore(t, dir, WithQuotaBytes(64<<20), WithClock((&fakeClock{now: t0}).Now))
	ctx := context.Background()
	id := genID(t, 1, size)
	body := genShard(1, size)
	runtime.GC()
	before := totalAlloc()
	if err := d.Put(ctx, ownerA, id, size, body, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	allocated := totalAlloc() - before
	t.Logf("48 MiB put allocated %d KiB (PutMemory %d KiB)", allocated>>10, PutMemory(size)>>10)
	// The generator itself allocates nothing per byte; everything else is
	// the store's: chunks, hasher, file handles, metadata.
	if allocated > 4<<20 {
		t.Fatalf("a 48 MiB put allocated %d bytes; a streaming put should need about %d", allocated, PutMemory(size))
	}
	r, n, err := d.Get(ctx, id)
	if err != nil || n != size {
		t.Fatalf("Get: %d %v", n, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("stored shard does not verify: %v", err)
	}
	r.Close()
	// The first proof builds the tree from disk, also in bounded memory:
	// the tree file and a read buffer, not the shard.
	runtime.GC()
	before = totalAlloc()
	proof, err := d.Prove(ctx, id, size/2, 100)
	if err != nil {
		t.Fatal(err)
	}
	allocated = totalAlloc() - before
	t.Logf("first proof allocated %d KiB (ProveMemory %d KiB, proof %d KiB)", allocated>>10, ProveMemory(size)>>10, len(proof)>>10)
	if allocated > uint64(2*ProveMemory(size)+len(proof)) {
		t.Fatalf("the first proof of a 48 MiB shard allocated %d bytes; ProveMemory is %d", allocated, ProveMemory(size))
	}
	if u := d.Usage(); u.Used != size || u.Reserved != 0 {
		t.Fatalf("usage %+v", u)
	}
}

// watchReader runs check once, just before handing out the last byte of
// the body.
type watchReader struct {
	r     io.Reader
	left  int64
	check func()
}

func (w *watchReader) Read(p []byte) (int, error) {
	if w.left <= int64(len(p)) && w.check != nil {
		w.check()
		w.check = nil
	}
	n, err := w.r.Read(p)
	w.left -= int64(n)
	return n, err
}

// A body that does not hash to its ID is written only to a temporary
// file, which is removed: nothing ever appears under the shard's name,
// and nothing is left anywhere.
func TestMismatchingBodyLeavesNoFile(t *testing.T) {
	const size = 5<<20 + 3
	dir := t.TempDir()
	d := openStore(t, dir, WithClock((&fakeClock{now: t0}).Now))
	b, id := newShard(rand.New(rand.NewPCG(21, 21)), size)
	b[size-1] ^= 1 // only the very last byte is wrong
	_, dataName, treeName, metaName := shardPath(id)
	var sawTemp bool
	body := &watchReader{r: bytes.NewReader(b), left: size, check: func() {
		for _, n := range []string{dataName, treeName, metaName} {
			if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists while the body is still arriving: %v", n, err)
			}
		}
		tmp := storeFiles(t, filepath.Join(dir, tmpDir))
		sawTemp = len(tmp) == 1
	}}
	err := d.Put(context.Background(), ownerA, id, size, body, t0.Add(time.Hour))
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("mismatching body: %v, want ErrIntegrity", err)
	}
	if !sawTemp {
		t.Fatal("the body was not being streamed to one temporary file")
	}
	assertEmpty(t, d, filepath.Join(dir, shardsDir))
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
	// A failing source midway leaves nothing either.
	err = d.Put(context.Background(), ownerA, id, size, io.MultiReader(bytes.NewReader(b[:size/2]), failReader{}), t0.Add(time.Hour))
	if !errors.Is(err, errBroken) {
		t.Fatalf("broken body: %v", err)
	}
	assertEmpty(t, d, filepath.Join(dir, shardsDir))
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("temp files left after a broken body: %v", files)
	}
	// And a canceled put stops reading and cleans up.
	ctx, cancel := context.WithCancel(context.Background())
	body = &watchReader{r: bytes.NewReader(b), left: size / 2, check: cancel}
	if err := d.Put(ctx, ownerA, id, size, body, t0.Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled put: %v", err)
	}
	assertEmpty(t, d, filepath.Join(dir, shardsDir))
	if files := storeFiles(t, filepath.Join(dir, tmpDir)); len(files) != 0 {
		t.Fatalf("temp files left after cancel: %v", files)
	}
}

var errBroken = errors.New("connection broke")

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errBroken }
