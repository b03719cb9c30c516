package node

import (
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
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

// OpenDatastore opens (creating if needed) the Pebble database at dir. Every
// write is synced to disk before it returns, so a record the DHT accepted
// survives a crash or a kill. The caller must Close it after closing
// everything that uses it.
func OpenDatastore(dir string) (*pebbleds.Datastore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create datastore dir: %w", err)
	}
	store, err := pebbleds.NewDatastore(dir,
		pebbleds.WithPebbleOpts(&pebble.Options{MemTableSize: pebbleMemTableSize}),
		pebbleds.WithCacheSize(pebbleCacheSize),
		pebbleds.WithPebbleWriteOptions(pebble.Sync),
	)
	if err != nil {
		return nil, fmt.Errorf("node: open datastore %s: %w", dir, err)
	}
	return store, nil
}
