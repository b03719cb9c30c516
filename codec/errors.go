package codec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them where it
// applies, so callers test with errors.Is.
var (
	// ErrTooFewShards: fewer than k shards of a segment verified.
	ErrTooFewShards = errors.New("codec: too few good shards")
	// ErrAuth: a segment failed authenticated decryption although its
	// shards matched their IDs: the key is wrong, or the layout does not
	// belong to these shards.
	ErrAuth = errors.New("codec: decryption failed (wrong key?)")
	// ErrFormat: a header, layout or payload is malformed.
	ErrFormat = errors.New("codec: malformed data")
	// ErrBadShard: a shard does not match the ID the layout expects.
	ErrBadShard = errors.New("codec: shard does not match its ID")
	// ErrTooLarge: a segment decompresses to more than it may.
	ErrTooLarge = errors.New("codec: segment decompresses beyond its size")
)

// TooFewShardsError says how many good shards a segment had and how many it
// needs. It matches ErrTooFewShards with errors.Is.
type TooFewShardsError struct {
	Segment uint64
	Good    int // distinct shards that verified
	Bad     int // shards dropped because they did not verify
	Need    int // k
}

func (e *TooFewShardsError) Error() string {
	return fmt.Sprintf("codec: segment %d: found %d good shards, need %d (%d dropped as bad)", e.Segment, e.Good, e.Need, e.Bad)
}

// Is makes errors.Is(err, ErrTooFewShards) true.
func (e *TooFewShardsError) Is(target error) bool { return target == ErrTooFewShards }

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}
