package record

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	librecord "github.com/libp2p/go-libp2p-record"
)

// Clock returns the current time. Validators and republishers take one so
// tests can move time; production code passes time.Now.
type Clock func() time.Time

// DefaultMaxLifetime is the longest expiry a record may carry, counted from
// the validator's clock. Records live at most this long without being
// re-signed; kad-dht's MaxRecordAge must be at least this long so stored
// records are not dropped before they expire.
const DefaultMaxLifetime = 40 * 24 * time.Hour

// Validator validates and selects Jellyfish records. It implements
// go-libp2p-record's Validator and is registered with kad-dht under
// Namespace. It is safe for concurrent use once constructed.
type Validator struct {
	clock       Clock
	maxLifetime time.Duration
	byName      map[string]KindRules
	byKind      map[Kind]KindRules
	highWater   HighWater
}

var _ librecord.Validator = (*Validator)(nil)

// Option configures a Validator.
type Option func(*Validator) error

// WithClock sets the clock used for expiry checks. The default is time.Now.
func WithClock(c Clock) Option {
	return func(v *Validator) error {
		if c == nil {
			return errors.New("record: nil clock")
		}
		v.clock = c
		return nil
	}
}

// WithKind registers a record kind. Registering a kind byte or name twice is
// an error.
func WithKind(k KindRules) Option {
	return func(v *Validator) error {
		if k.Kind == 0 || k.Name == "" || strings.Contains(k.Name, "/") {
			return fmt.Errorf("record: invalid kind rules %d/%q", k.Kind, k.Name)
		}
		if k.Authorize == nil {
			return fmt.Errorf("record: kind %q has no authorisation rule", k.Name)
		}
		if _, dup := v.byKind[k.Kind]; dup {
			return fmt.Errorf("record: kind %d registered twice", k.Kind)
		}
		if _, dup := v.byName[k.Name]; dup {
			return fmt.Errorf("record: kind name %q registered twice", k.Name)
		}
		v.byKind[k.Kind] = k
		v.byName[k.Name] = k
		return nil
	}
}

// WithMaxLifetime bounds how far in the future an expiry may lie.
func WithMaxLifetime(d time.Duration) Option {
	return func(v *Validator) error {
		if d <= 0 {
			return fmt.Errorf("record: max lifetime %v must be positive", d)
		}
		v.maxLifetime = d
		return nil
	}
}

// WithHighWater makes the validator refuse records older than the highest
// sequence number h has seen for their key, and report every valid record
// to h. h decides which marks it keeps (DatastoreHighWater's MarkPolicy).
func WithHighWater(h HighWater) Option {
	return func(v *Validator) error {
		if h == nil {
			return errors.New("record: nil high-water store")
		}
		v.highWater = h
		return nil
	}
}

// NewValidator returns a validator that knows the node kind plus any kinds
// given with WithKind.
func NewValidator(opts ...Option) (*Validator, error) {
	v := &Validator{
		clock:       time.Now,
		maxLifetime: DefaultMaxLifetime,
		byName:      map[string]KindRules{},
		byKind:      map[Kind]KindRules{},
	}
	opts = append([]Option{WithKind(NodeRules())}, opts...)
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Now returns the validator's idea of the current time.
func (v *Validator) Now() time.Time { return v.clock() }

// Validate implements librecord.Validator. It returns nil only for a record
// that fits the size cap, parses, is of the kind its key names, carries a
// valid signature over exactly this key, has not expired, does not expire
// too far in the future, is authorised by its kind's rule, has a valid body,
// and is not older than the high-water mark for the key. Valid records raise
// the high-water mark (a bounded HighWater may keep none for a new key).
func (v *Validator) Validate(key string, value []byte) error {
	_, err := v.Check(key, value)
	return err
}

// Check is Validate returning the decoded record.
func (v *Validator) Check(key string, value []byte) (*Record, error) {
	if len(value) > MaxRecordSize {
		return nil, fmt.Errorf("record: %d bytes at %q: %w", len(value), key, ErrTooLarge)
	}
	pk, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	rules, ok := v.byName[pk.KindName]
	if !ok {
		return nil, fmt.Errorf("record: key kind %q: %w", pk.KindName, ErrUnknownKind)
	}
	d, err := decode(value)
	if err != nil {
		return nil, err
	}
	if d.Kind != rules.Kind {
		if _, known := v.byKind[d.Kind]; !known {
			return nil, fmt.Errorf("record: kind %d: %w", d.Kind, ErrUnknownKind)
		}
		return nil, fmt.Errorf("record: kind %d record under %q key: %w", d.Kind, rules.Name, ErrWrongKey)
	}
	now := v.clock()
	if !now.Before(d.Expires) {
		return nil, fmt.Errorf("record: %q expired at %v: %w", key, d.Expires.UTC(), ErrExpired)
	}
	if d.Expires.Sub(now) > v.maxLifetime {
		return nil, fmt.Errorf("record: %q expires at %v: %w", key, d.Expires.UTC(), ErrTooFarFuture)
	}
	if err := rules.Authorize(pk.Rest, d.Signer); err != nil {
		return nil, fmt.Errorf("record: %q: %w: %w", key, ErrUnauthorized, err)
	}
	if err := d.verify(key); err != nil {
		return nil, fmt.Errorf("record: %q: %w", key, err)
	}
	if rules.CheckBody != nil {
		if err := rules.CheckBody(d.Body); err != nil {
			return nil, fmt.Errorf("record: %q: %w: %w", key, ErrBadBody, err)
		}
	}
	if v.highWater != nil {
		seen, err := v.highWater.Seen(key)
		if err != nil {
			return nil, fmt.Errorf("record: %q: high-water mark: %w", key, err)
		}
		if d.Seq < seen {
			return nil, fmt.Errorf("record: %q seq %d < %d: %w", key, d.Seq, seen, ErrStale)
		}
		if d.Seq > seen {
			// A valid signature proves the signer issued this sequence
			// number, so raising the mark here is sound whatever Select
			// later picks.
			if err := v.highWater.Observe(key, d.Seq); err != nil {
				return nil, fmt.Errorf("record: %q: high-water mark: %w", key, err)
			}
		}
	}
	return &d.Record, nil
}

// Select implements librecord.Validator. It prefers the highest sequence
// number, then the later expiry, then the lexicographically smallest
// encoding, so every node picks the same record. Among byte-identical best
// candidates it returns the lowest index; in particular it returns 0 when
// values[0] equals the best, which lets kad-dht accept a re-put of a record
// it already stores and refresh its age. Candidates that do not parse lose.
func (v *Validator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec *Record
	for i, val := range values {
		r, err := Decode(val)
		if err != nil {
			continue
		}
		if best < 0 || better(r, val, bestRec, values[best]) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("record: select %q: no parsable candidate among %d: %w", key, len(values), ErrMalformed)
	}
	return best, nil
}

// better reports whether record a (encoded as araw) strictly beats b.
func better(a *Record, araw []byte, b *Record, braw []byte) bool {
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	if !a.Expires.Equal(b.Expires) {
		return a.Expires.After(b.Expires)
	}
	return bytes.Compare(araw, braw) < 0
}
