package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// ErrNotConfirmed is returned by PutRecordConfirmed when fewer remote peers
// than required hold the record (or a newer one) after the put.
var ErrNotConfirmed = errors.New("record not confirmed by enough remote peers")

// PutRecordConfirmed puts value at key in d and then asks each of the peers
// closest to key directly (one GET_VALUE each, never the local store) for
// the record. It counts only remote peers that answer with a record valid
// under v that is byte-identical to value or better by v's Select rule, and
// returns that count. It fails with ErrNotConfirmed if the count is below
// minRemote: PutValue succeeding proves nothing about remote storage.
func PutRecordConfirmed(ctx context.Context, d *dht.IpfsDHT, v *record.Validator, key string, value []byte, minRemote int) (int, error) {
	if _, err := v.Check(key, value); err != nil {
		return 0, fmt.Errorf("node: confirmed put %q: %w", key, err)
	}
	if err := d.PutValue(ctx, key, value); err != nil {
		return 0, fmt.Errorf("node: confirmed put %q: %w", key, err)
	}
	n, err := ConfirmRecord(ctx, d, v, key, value)
	if err != nil {
		return n, err
	}
	if n < minRemote {
		return n, fmt.Errorf("node: put %q: %w: %d of %d required", key, ErrNotConfirmed, n, minRemote)
	}
	return n, nil
}

// ConfirmRecord returns how many of the remote peers closest to key serve
// value or a better record for key; see PutRecordConfirmed.
func ConfirmRecord(ctx context.Context, d *dht.IpfsDHT, v *record.Validator, key string, value []byte) (int, error) {
	peers, err := d.GetClosestPeers(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("node: confirm %q: find closest peers: %w", key, err)
	}
	pm, err := pb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		return 0, fmt.Errorf("node: confirm %q: %w", key, err)
	}
	self := d.Host().ID()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		confirmed int
	)
	for _, p := range peers {
		if p == self {
			continue
		}
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			rec, _, err := pm.GetValue(ctx, p, key)
			if err != nil || rec == nil || !bytes.Equal(rec.GetKey(), []byte(key)) {
				return
			}
			if !holdsAtLeast(v, key, rec.GetValue(), value) {
				return
			}
			mu.Lock()
			confirmed++
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return confirmed, ctx.Err()
}

// holdsAtLeast reports whether remote is value itself or a valid record
// that Select prefers over value.
func holdsAtLeast(v *record.Validator, key string, remote, value []byte) bool {
	if bytes.Equal(remote, value) {
		return true
	}
	if _, err := v.Check(key, remote); err != nil {
		return false
	}
	best, err := v.Select(key, [][]byte{remote, value})
	return err == nil && best == 0
}
