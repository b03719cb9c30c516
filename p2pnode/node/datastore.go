package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// DatastoreDir is the name of the record database in the data directory.
const DatastoreDir = "dht"

// Pebble sizes: records are at most 4 KiB each, so small buffers suffice and
// a testnet of many nodes in one process stays light.
const (
	pebbleMemTableSize = 1 << 20
	pebbleCacheSize    = 2 << 20
)

// ErrDatastoreClosed is returned by a Datastore used after Close.
var ErrDatastoreClosed = errors.New("node: datastore closed")

// Datastore is the node's record database: Pebble, every write synced to
// disk before it returns, so a record the DHT accepted survives a crash or
// a kill. Pebble panics when used after Close, and a DHT request being
// handled can reach the store while the node shuts down (the host does
// not wait for its stream handlers); so every operation holds a read lock,
// Close waits for those in flight, and one that comes later gets
// ErrDatastoreClosed.
type Datastore struct {
	mu     sync.RWMutex
	closed bool
	db     *pebbleds.Datastore
}

var _ ds.Batching = (*Datastore)(nil)

// OpenDatastore opens (creating if needed) the Pebble database at dir. The
// caller must Close it after closing everything that uses it.
func OpenDatastore(dir string) (*Datastore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create datastore dir: %w", err)
	}
	db, err := pebbleds.NewDatastore(dir,
		pebbleds.WithPebbleOpts(&pebble.Options{MemTableSize: pebbleMemTableSize}),
		pebbleds.WithCacheSize(pebbleCacheSize),
		pebbleds.WithPebbleWriteOptions(pebble.Sync),
	)
	if err != nil {
		return nil, fmt.Errorf("node: open datastore %s: %w", dir, err)
	}
	return &Datastore{db: db}, nil
}

// use runs f under the read lock unless the store is closed.
func (d *Datastore) use(f func() error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrDatastoreClosed
	}
	return f()
}

func (d *Datastore) Get(ctx context.Context, key ds.Key) (v []byte, err error) {
	err = d.use(func() error { v, err = d.db.Get(ctx, key); return err })
	return v, err
}

func (d *Datastore) Has(ctx context.Context, key ds.Key) (ok bool, err error) {
	err = d.use(func() error { ok, err = d.db.Has(ctx, key); return err })
	return ok, err
}

func (d *Datastore) GetSize(ctx context.Context, key ds.Key) (n int, err error) {
	err = d.use(func() error { n, err = d.db.GetSize(ctx, key); return err })
	return n, err
}

// Query starts a query; Pebble's own Close waits for the queries it runs.
func (d *Datastore) Query(ctx context.Context, q dsq.Query) (r dsq.Results, err error) {
	err = d.use(func() error { r, err = d.db.Query(ctx, q); return err })
	return r, err
}

func (d *Datastore) Put(ctx context.Context, key ds.Key, value []byte) error {
	return d.use(func() error { return d.db.Put(ctx, key, value) })
}

func (d *Datastore) Delete(ctx context.Context, key ds.Key) error {
	return d.use(func() error { return d.db.Delete(ctx, key) })
}

func (d *Datastore) Sync(ctx context.Context, prefix ds.Key) error {
	return d.use(func() error { return d.db.Sync(ctx, prefix) })
}

// Batch returns a batch whose Commit is guarded like every write.
func (d *Datastore) Batch(ctx context.Context) (ds.Batch, error) {
	var b ds.Batch
	err := d.use(func() (err error) { b, err = d.db.Batch(ctx); return err })
	if err != nil {
		return nil, err
	}
	return &guardedBatch{Batch: b, d: d}, nil
}

type guardedBatch struct {
	ds.Batch
	d *Datastore
}

func (b *guardedBatch) Commit(ctx context.Context) error {
	return b.d.use(func() error { return b.Batch.Commit(ctx) })
}

// Close waits for the operations in flight and closes the database; later
// calls do nothing.
func (d *Datastore) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.db.Close()
}
