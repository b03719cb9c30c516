package shardproto

import (
	"context"
	"io"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Remote is the client's owner's view of one holder. It satisfies
// shardstore.Store and shardstore.Auditee, like the view of a local
// store, so placement and repair code works with either.
type Remote struct {
	c *Client
	p peer.ID
}

var (
	_ shardstore.Store   = (*Remote)(nil)
	_ shardstore.Auditee = (*Remote)(nil)
)

// Remote returns the view of holder p.
func (c *Client) Remote(p peer.ID) *Remote { return &Remote{c: c, p: p} }

// Peer returns the holder's peer ID.
func (r *Remote) Peer() peer.ID { return r.p }

// Put stores a shard at the holder and discards the receipt; use
// PutReceipt to keep it.
func (r *Remote) Put(ctx context.Context, id codec.ShardID, size int64, body io.Reader, lease time.Time) error {
	_, err := r.c.PutReader(ctx, r.p, id, size, body, lease)
	return err
}

// PutReceipt stores a shard at the holder and returns its receipt.
func (r *Remote) PutReceipt(ctx context.Context, id codec.ShardID, size int64, body io.Reader, lease time.Time) (Receipt, error) {
	return r.c.PutReader(ctx, r.p, id, size, body, lease)
}

// Get fetches and verifies a whole shard (see Client.Get).
func (r *Remote) Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error) {
	return r.c.Get(ctx, r.p, id)
}

// GetRange fetches and verifies a byte range (see Client.GetRange).
func (r *Remote) GetRange(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	return r.c.GetRange(ctx, r.p, id, off, n)
}

// Stat describes a shard (see Client.Stat).
func (r *Remote) Stat(ctx context.Context, id codec.ShardID) (shardstore.Info, error) {
	return r.c.Stat(ctx, r.p, id)
}

// Delete drops the owner's reference (see Client.Delete).
func (r *Remote) Delete(ctx context.Context, id codec.ShardID) error {
	return r.c.Delete(ctx, r.p, id)
}

// Renew extends the owner's leases (see Client.Renew).
func (r *Remote) Renew(ctx context.Context, ids []codec.ShardID, until time.Time) ([]codec.ShardID, error) {
	return r.c.Renew(ctx, r.p, ids, until)
}

// Challenge returns the holder's answer to a salted-hash challenge; its
// signature has been verified (see Client.Challenge for the signed form).
func (r *Remote) Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error) {
	a, err := r.c.Challenge(ctx, r.p, id, salt)
	return a.Answer, err
}

// Prove returns the holder's proof of a byte range, already verified
// against id (see Client.ProveRange).
func (r *Remote) Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	return r.c.ProveRange(ctx, r.p, id, off, n)
}
