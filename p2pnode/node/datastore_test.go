package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
)

// TestDatastoreAfterClose: Pebble panics when used after Close; the
// node's datastore answers ErrDatastoreClosed instead, and Close waits
// for writes in flight, so requests still being handled while a node
// shuts down cannot crash it.
func TestDatastoreAfterClose(t *testing.T) {
	ctx := context.Background()
	d, err := OpenDatastore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, ds.NewKey("/a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				err := d.Put(ctx, ds.NewKey(fmt.Sprintf("/w%d/%d", i, j)), []byte("x"))
				if errors.Is(err, ErrDatastoreClosed) {
					return
				}
				if err != nil {
					t.Errorf("put before close: %v", err)
					return
				}
			}
		})
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	b, err := d.Batch(ctx)
	if !errors.Is(err, ErrDatastoreClosed) || b != nil {
		t.Fatalf("batch after close: %v", err)
	}
	for name, f := range map[string]func() error{
		"get":    func() error { _, err := d.Get(ctx, ds.NewKey("/a")); return err },
		"has":    func() error { _, err := d.Has(ctx, ds.NewKey("/a")); return err },
		"size":   func() error { _, err := d.GetSize(ctx, ds.NewKey("/a")); return err },
		"put":    func() error { return d.Put(ctx, ds.NewKey("/b"), nil) },
		"delete": func() error { return d.Delete(ctx, ds.NewKey("/a")) },
		"sync":   func() error { return d.Sync(ctx, ds.NewKey("/")) },
	} {
		if err := f(); !errors.Is(err, ErrDatastoreClosed) {
			t.Errorf("%s after close: %v", name, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestDatastoreBatchCommitAfterClose: a batch made before Close and
// committed after it is refused, not a panic.
func TestDatastoreBatchCommitAfterClose(t *testing.T) {
	ctx := context.Background()
	d, err := OpenDatastore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, ds.NewKey("/k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := b.Commit(ctx); !errors.Is(err, ErrDatastoreClosed) {
		t.Fatalf("commit after close: %v", err)
	}
}
