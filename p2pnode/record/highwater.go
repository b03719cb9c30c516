package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/multiformats/go-base32"
)

// HighWater remembers, per DHT key, the highest sequence number seen in a
// valid record. Implementations must be safe for concurrent use and must
// never lower a mark.
type HighWater interface {
	// Seen returns the mark for key, 0 if none.
	Seen(key string) (uint64, error)
	// Observe raises the mark for key to seq if seq is higher.
	Observe(key string, seq uint64) error
}

// highWaterTimeout bounds one datastore operation. librecord.Validator has
// no context, so the store makes its own.
const highWaterTimeout = 10 * time.Second

// DatastoreHighWater keeps high-water marks in a datastore under a prefix,
// one 8-byte big-endian value per key, so they survive restarts. Hot marks
// are cached in memory.
type DatastoreHighWater struct {
	store  ds.Datastore
	prefix ds.Key

	mu    sync.Mutex
	cache map[string]uint64
}

var _ HighWater = (*DatastoreHighWater)(nil)

// maxCachedMarks bounds the in-memory cache; past it the cache is dropped
// and refilled from the datastore.
const maxCachedMarks = 1 << 16

// NewDatastoreHighWater stores marks in store below prefix (for example
// "/jf-hwm"). The caller owns store and closes it after the last use.
func NewDatastoreHighWater(store ds.Datastore, prefix string) *DatastoreHighWater {
	return &DatastoreHighWater{store: store, prefix: ds.NewKey(prefix), cache: map[string]uint64{}}
}

func (h *DatastoreHighWater) dsKey(key string) ds.Key {
	return h.prefix.ChildString(base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// Seen implements HighWater.
func (h *DatastoreHighWater) Seen(key string) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seenLocked(key)
}

func (h *DatastoreHighWater) seenLocked(key string) (uint64, error) {
	if seq, ok := h.cache[key]; ok {
		return seq, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), highWaterTimeout)
	defer cancel()
	buf, err := h.store.Get(ctx, h.dsKey(key))
	if errors.Is(err, ds.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("record: read high-water mark: %w", err)
	}
	if len(buf) != 8 {
		return 0, fmt.Errorf("record: high-water mark of %d bytes: %w", len(buf), ErrMalformed)
	}
	seq := binary.BigEndian.Uint64(buf)
	h.remember(key, seq)
	return seq, nil
}

func (h *DatastoreHighWater) remember(key string, seq uint64) {
	if len(h.cache) >= maxCachedMarks {
		clear(h.cache)
	}
	h.cache[key] = seq
}

// Observe implements HighWater. The mark is written to the datastore before
// it is cached, so a failed write leaves no mark that a restart would lose.
func (h *DatastoreHighWater) Observe(key string, seq uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := h.seenLocked(key)
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), highWaterTimeout)
	defer cancel()
	if err := h.store.Put(ctx, h.dsKey(key), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return fmt.Errorf("record: write high-water mark: %w", err)
	}
	h.remember(key, seq)
	return nil
}
