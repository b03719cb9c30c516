package record

import (
	"errors"
	"fmt"
	"maps"
	"sync"
)

// ErrFull reports a store that keeps no new key: one of its Limits is
// reached. Keys it already holds can still be updated.
var ErrFull = errors.New("record: store full")

// Limits bound how many keys a store keeps. A field of zero or less sets
// no limit.
type Limits struct {
	// Total bounds the keys of every kind together.
	Total int
	// PerKind bounds the keys of one kind, that is under one
	// "/jf/<kind>/" prefix, unless Kinds names the kind.
	PerKind int
	// Kinds overrides PerKind for the kinds it names.
	Kinds map[string]int
	// PerPublisher bounds the keys of one publisher within a kind whose
	// rules name publishers (KindRules.Publisher). A kind without that rule
	// has one key per publisher by construction.
	PerPublisher int
}

// KindLimit returns the limit of kind name: its entry in Kinds, else
// PerKind.
func (l Limits) KindLimit(name string) int {
	if n, ok := l.Kinds[name]; ok {
		return n
	}
	return l.PerKind
}

// Scope is where a key counts against Limits.
type Scope struct {
	// Kind is the key's kind name.
	Kind string
	// Publisher names the key's publisher for kinds with a Publisher rule;
	// empty otherwise.
	Publisher string
	// KeepMarks is the kind's KindRules.KeepMarks. Keys of kinds the Scopes
	// do not know keep their marks: nothing says they may go.
	KeepMarks bool
}

// Scopes maps DHT keys to their Scope by the rules of the kinds it knows.
// It is immutable and safe for concurrent use.
type Scopes struct {
	byName map[string]KindRules
}

// NewScopes knows the node kind and kinds; a kind name given twice is an
// error. Pass the kinds the Validator knows.
func NewScopes(kinds ...KindRules) (*Scopes, error) {
	s := &Scopes{byName: map[string]KindRules{}}
	for _, k := range append([]KindRules{NodeRules()}, kinds...) {
		if _, dup := s.byName[k.Name]; dup {
			return nil, fmt.Errorf("record: kind name %q registered twice", k.Name)
		}
		s.byName[k.Name] = k
	}
	return s, nil
}

// Scope returns the scope of key. It fails only for a key that is not
// "/jf/<kind>/<rest>"; a kind it does not know gets a scope that keeps
// marks and names no publisher.
func (s *Scopes) Scope(key string) (Scope, error) {
	pk, err := ParseKey(key)
	if err != nil {
		return Scope{}, err
	}
	rules, ok := s.byName[pk.KindName]
	if !ok {
		return Scope{Kind: pk.KindName, KeepMarks: true}, nil
	}
	sc := Scope{Kind: pk.KindName, KeepMarks: rules.KeepMarks}
	if rules.Publisher != nil {
		sc.Publisher = rules.Publisher(pk.Rest)
	}
	return sc, nil
}

// publisherKey identifies one publisher of one kind.
type publisherKey struct{ kind, publisher string }

// Quota counts the keys a store holds per Scope and admits new ones while
// its Limits allow. Only publishers with at least one key are remembered,
// so its memory is bounded by the keys counted. Safe for concurrent use.
type Quota struct {
	limits Limits

	mu         sync.Mutex
	total      int
	kinds      map[string]int
	publishers map[publisherKey]int
	refused    map[string]uint64
}

// NewQuota returns an empty quota enforcing l.
func NewQuota(l Limits) *Quota {
	l.Kinds = maps.Clone(l.Kinds)
	return &Quota{limits: l, kinds: map[string]int{}, publishers: map[publisherKey]int{}, refused: map[string]uint64{}}
}

// Limits returns the limits q enforces.
func (q *Quota) Limits() Limits {
	l := q.limits
	l.Kinds = maps.Clone(l.Kinds)
	return l
}

// Admit counts one more key in s if no limit is reached, and otherwise
// counts a refusal and returns an error wrapping ErrFull that names the
// limit.
func (q *Quota) Admit(s Scope) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.fullLocked(s); err != nil {
		q.refused[s.Kind]++
		return err
	}
	q.addLocked(s)
	return nil
}

// fullLocked returns the limit a new key of s would pass, nil if none.
func (q *Quota) fullLocked(s Scope) error {
	switch {
	case q.limits.Total > 0 && q.total >= q.limits.Total:
		return fmt.Errorf("%w: %d keys, the limit of all kinds", ErrFull, q.total)
	case q.limits.KindLimit(s.Kind) > 0 && q.kinds[s.Kind] >= q.limits.KindLimit(s.Kind):
		return fmt.Errorf("%w: %d %s keys, the limit of the kind", ErrFull, q.kinds[s.Kind], s.Kind)
	case s.Publisher != "" && q.limits.PerPublisher > 0 && q.publishers[publisherKey{s.Kind, s.Publisher}] >= q.limits.PerPublisher:
		return fmt.Errorf("%w: %d %s keys of publisher %s, the limit of a publisher", ErrFull, q.limits.PerPublisher, s.Kind, s.Publisher)
	}
	return nil
}

// Fits reports whether Admit would admit a key of s now.
func (q *Quota) Fits(s Scope) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.fullLocked(s) == nil
}

// Add counts one more key in s whatever the limits: keys found in the
// store, or keys a store must take anyway.
func (q *Quota) Add(s Scope) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(s)
}

func (q *Quota) addLocked(s Scope) {
	q.total++
	q.kinds[s.Kind]++
	if s.Publisher != "" {
		q.publishers[publisherKey{s.Kind, s.Publisher}]++
	}
}

// Remove counts one key of s less.
func (q *Quota) Remove(s Scope) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.total > 0 {
		q.total--
	}
	if n := q.kinds[s.Kind]; n > 1 {
		q.kinds[s.Kind] = n - 1
	} else {
		delete(q.kinds, s.Kind)
	}
	if s.Publisher != "" {
		pk := publisherKey{s.Kind, s.Publisher}
		if n := q.publishers[pk]; n > 1 {
			q.publishers[pk] = n - 1
		} else {
			delete(q.publishers, pk)
		}
	}
}

// Refuse counts a key of s refused for a reason outside q.
func (q *Quota) Refuse(s Scope) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refused[s.Kind]++
}

// QuotaStats is what a Quota counted.
type QuotaStats struct {
	// Keys is the number of keys held, Kinds the same per kind.
	Keys  int
	Kinds map[string]int
	// Publishers is the number of publishers with keys of kinds that name
	// publishers.
	Publishers int
	// Refused counts the new keys refused since the quota was made,
	// RefusedKinds the same per kind.
	Refused      uint64
	RefusedKinds map[string]uint64
}

// Stats returns a copy of the counts.
func (q *Quota) Stats() QuotaStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := QuotaStats{Keys: q.total, Kinds: maps.Clone(q.kinds), Publishers: len(q.publishers), RefusedKinds: maps.Clone(q.refused)}
	for _, n := range q.refused {
		st.Refused += n
	}
	return st
}
