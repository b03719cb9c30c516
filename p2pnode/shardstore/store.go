package shardstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// OwnerSize is the length in bytes of an Owner.
const OwnerSize = 32

// Owner identifies the account that stored a shard, for example a hash of
// the account's public key. The store treats it as an opaque key: it is
// only compared and accounted, never interpreted.
type Owner [OwnerSize]byte

// String returns the lower-case hex form of o.
func (o Owner) String() string { return hex.EncodeToString(o[:]) }

// Short returns the first 12 hex characters of o, for log lines.
func (o Owner) Short() string { return hex.EncodeToString(o[:6]) }

// Clock returns the current time. Stores and protocols take one so that
// lease expiry can be tested without waiting.
type Clock func() time.Time

// Sentinel errors. Errors returned by this package wrap them with context;
// test with errors.Is. The shard protocol maps them across the wire, so a
// remote holder returns the same sentinels as the local store.
var (
	// ErrNotFound means the shard (or the caller's reference to it) is not
	// held.
	ErrNotFound = errors.New("shard not found")
	// ErrQuotaExceeded means storing the shard would exceed the shared space.
	ErrQuotaExceeded = errors.New("shard quota exceeded")
	// ErrIntegrity means bytes do not hash to the shard ID they were given
	// for.
	ErrIntegrity = errors.New("shard bytes do not match shard ID")
	// ErrTooLarge means a shard or range exceeds a hard size limit.
	ErrTooLarge = errors.New("shard too large")
	// ErrNoSpace means the disk itself is full (ENOSPC).
	ErrNoSpace = errors.New("no space left on device")
	// ErrInvalid means an argument is malformed: a negative or empty size,
	// an out-of-range byte range, a lease in the past or too far ahead.
	ErrInvalid = errors.New("invalid shard request")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("shard store closed")
	// ErrBusy means the put's owner or source already has as many bytes
	// reserved by puts in flight as it may (see WithReservationShare);
	// the same put may succeed once some of them ended.
	ErrBusy = errors.New("shard store busy")
	// ErrOverAllowance means the put would take its owner, or all owners
	// of its owner's kind together, past what the provider's admission
	// policy lets them reference here (ContextWithAllowance); the error is
	// an *AllowanceError saying so in plain words. Another provider may
	// take the shard.
	ErrOverAllowance = errors.New("over the allowance at this provider")
)

// OwnerLease is one owner's reference to a shard and when it expires.
type OwnerLease struct {
	Owner Owner
	Lease time.Time
}

// Info describes a stored shard.
type Info struct {
	ID       codec.ShardID
	Size     int64
	StoredAt time.Time
	// Lease is the latest lease over all owners: the shard is kept at
	// least until then.
	Lease time.Time
	// Refs is the number of owners referencing the shard.
	Refs int
	// Owners lists each owner's lease. The local store fills it; a remote
	// holder does not reveal owners and leaves it nil.
	Owners []OwnerLease
}

// Putter stores a shard for the owner the view belongs to. r must yield
// exactly size bytes hashing to id; a shard already held only gains the
// owner's reference and a lease extended to lease (never shortened).
// Nothing is stored when an error is returned.
type Putter interface {
	Put(ctx context.Context, id codec.ShardID, size int64, r io.Reader, lease time.Time) error
}

// Fetcher returns a whole shard. The reader verifies the bytes against id
// as they are read and fails with ErrIntegrity at the end if they do not
// match; the caller must Close it.
type Fetcher interface {
	Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error)
}

// RangeFetcher returns bytes [off, off+n) of a shard, verified against id
// where the bytes come from an untrusted holder.
type RangeFetcher interface {
	GetRange(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error)
}

// Statter describes a held shard, or fails with ErrNotFound.
type Statter interface {
	Stat(ctx context.Context, id codec.ShardID) (Info, error)
}

// Remover drops the view's owner's reference to a shard; the holder frees
// the shard once no reference is left. ErrNotFound if the owner held none.
type Remover interface {
	Delete(ctx context.Context, id codec.ShardID) error
}

// Renewer extends the view's owner's leases on many shards at once to
// until (never shortening one). It returns the IDs the owner holds no
// reference to; those were not renewed.
type Renewer interface {
	Renew(ctx context.Context, ids []codec.ShardID, until time.Time) (missing []codec.ShardID, err error)
}

// Challenger answers a salted-hash audit: BLAKE3-256(salt ‖ shard bytes).
type Challenger interface {
	Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error)
}

// Prover returns the codec.Prove proof of bytes [off, off+n) of a shard, to
// be checked with codec.VerifyRange against id.
type Prover interface {
	Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error)
}

// Store is one owner's view of a shard holder, local or remote.
type Store interface {
	Putter
	Fetcher
	RangeFetcher
	Statter
	Remover
	Renewer
}

// Auditee is a holder that can be audited.
type Auditee interface {
	Challenger
	Prover
}

// TierBytes returns the shared space of tier t: 2^t GiB (tier 0 is 1 GiB).
// Tiers outside [0, MaxTier] return 0.
func TierBytes(t int) int64 {
	if t < 0 || t > MaxTier {
		return 0
	}
	return int64(1<<30) << t
}

// MaxTier is the largest tier: 2^20 GiB (1 PiB).
const MaxTier = 20

// ChallengeAnswer computes the salted-hash answer BLAKE3-256(salt ‖ shard)
// from shard bytes already in memory. The holder computes the same value
// streaming from disk (Disk.Challenge).
func ChallengeAnswer(salt [32]byte, shard []byte) [32]byte {
	h := newChallengeHash(salt)
	h.Write(shard)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// fmtErr wraps a sentinel with an operation and details.
func fmtErr(op string, kind error, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, kind, fmt.Sprintf(format, args...))
}
