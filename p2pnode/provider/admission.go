package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of the admission policy (AdmissionConfig).
const (
	// DefaultStarterBytes is the most one starter account may reference
	// at one provider: an honest account spreads each segment's shards
	// over at least 4 providers, so its 1 GiB starter allowance never puts
	// more than a quarter of it on one.
	DefaultStarterBytes = 256 << 20
	// DefaultStarterShare is the share of the quota all starter accounts
	// together may reference: what keys made for free can take of a disk.
	DefaultStarterShare = 1.0 / 8
	// DefaultSharingShare is the share of the quota one sharing account
	// may reference.
	DefaultSharingShare = 1.0 / 4
	// DefaultRepairSlack is how far past its caps a repair's put may take
	// an account (a quarter more, within the quota). A provider cannot
	// tell a shard repair rebuilt from a new one, so any put may claim to
	// be one: the slack is also how far any account can exceed its caps.
	// Without it, an account whose shards fill its cap at every provider
	// could not move a lost holder's shards anywhere, and its data would
	// wear away one holder at a time.
	DefaultRepairSlack = 1.0 / 4
	// DefaultLinkedTTL is how long an account found sharing stays so in
	// the cache, DefaultUnlinkedTTL how long one found without a linked
	// node (or whose lookup failed) stays a starter before it is looked
	// up again.
	DefaultLinkedTTL   = 30 * time.Minute
	DefaultUnlinkedTTL = 3 * time.Minute
	// DefaultLookupTimeout bounds one account's lookup, the wait for a
	// lookup slot included. A put waits for it before its body is read,
	// well inside the time the put is given (shardproto.DefaultHeaderTimeout
	// and more).
	DefaultLookupTimeout = 5 * time.Second
	// DefaultMaxLookups bounds the lookups running at once.
	DefaultMaxLookups = 8
	// DefaultMaxCached bounds the accounts whose class is cached.
	DefaultMaxCached = 4096
)

// Groups of owners in the store (shardstore.Allowance.Group). Starter
// accounts are in the store's default group, where every owner is after a
// restart until its next put says otherwise: a restart never hides bytes
// of starter accounts from their collective cap.
const (
	GroupStarter  = ""
	GroupSharing  = "sharing"
	GroupOwn      = "own"
	GroupObserver = "observer"
)

// Trusted observers (TrustObservers).
const (
	// ObserverBytes is what one trusted observer may reference here: room
	// for its test shard and the one replacing it before its lease ends,
	// twice over, at the 64 KiB test shards of earlier versions.
	ObserverBytes = 256 << 10
	// MaxTrustedObservers bounds the trusted set.
	MaxTrustedObservers = 1 << 16
)

// TrustObservers sets the providers whose test shards this provider takes
// outside the starters' share: those holding the shards of the account
// this provider's node is linked to, as the account's recent maintenance
// rounds found them (jellyfish node --maintain). Their vetting of this node
// is what that account's allowance there rests on, and an observer's key
// shares no node, so its test shard would otherwise count among the
// starters' bytes and be refused whenever fresh keys have filled that
// share. Each may reference ObserverBytes at most, in a group of its own
// capped like the starters' (StarterShare of the quota), with or without
// a starters' share left; at most MaxTrustedObservers are kept. The set
// replaces the previous one.
func (a *Admission) TrustObservers(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, min(len(ids), MaxTrustedObservers))
	for _, id := range ids {
		if len(m) >= MaxTrustedObservers {
			break
		}
		m[id] = struct{}{}
	}
	a.mu.Lock()
	a.observers = m
	a.mu.Unlock()
}

// TrustedObservers returns how many observers are trusted now.
func (a *Admission) TrustedObservers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.observers)
}

// trusted reports whether id is a trusted observer.
func (a *Admission) trusted(id peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.observers[id]
	return ok
}

// AdmissionConfig sets the admission policy of a provider: how much of
// its quota each account may reference there. The zero value enforces the
// policy with the defaults.
type AdmissionConfig struct {
	// AdmitAll turns the policy off: every account may store up to the
	// quota. Test networks set it (on a local network every provider is
	// the user's own).
	AdmitAll bool
	// StarterBytes caps one starter account; zero means
	// DefaultStarterBytes.
	StarterBytes int64
	// StarterShare caps all starter accounts together at this share of
	// the quota; zero means DefaultStarterShare.
	StarterShare float64
	// SharingShare caps one sharing account at this share of the quota;
	// zero means DefaultSharingShare.
	SharingShare float64
	// RepairSlack widens an account's caps (its own and its group's) by
	// this share for repairs' puts; zero means DefaultRepairSlack.
	RepairSlack float64
	// LinkedTTL, UnlinkedTTL, LookupTimeout, MaxLookups and MaxCached
	// tune the lookups; zero means the default of each.
	LinkedTTL, UnlinkedTTL time.Duration
	LookupTimeout          time.Duration
	MaxLookups, MaxCached  int
}

// withDefaults fills the zero fields and checks the others.
func (c AdmissionConfig) withDefaults() (AdmissionConfig, error) {
	if c.StarterBytes == 0 {
		c.StarterBytes = DefaultStarterBytes
	}
	if c.StarterShare == 0 {
		c.StarterShare = DefaultStarterShare
	}
	if c.SharingShare == 0 {
		c.SharingShare = DefaultSharingShare
	}
	if c.RepairSlack == 0 {
		c.RepairSlack = DefaultRepairSlack
	}
	if c.LinkedTTL == 0 {
		c.LinkedTTL = DefaultLinkedTTL
	}
	if c.UnlinkedTTL == 0 {
		c.UnlinkedTTL = DefaultUnlinkedTTL
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.MaxLookups == 0 {
		c.MaxLookups = DefaultMaxLookups
	}
	if c.MaxCached == 0 {
		c.MaxCached = DefaultMaxCached
	}
	switch {
	case c.StarterBytes < 0:
		return c, fmt.Errorf("starter cap %d bytes is negative", c.StarterBytes)
	case !(c.StarterShare > 0 && c.StarterShare <= 1):
		return c, fmt.Errorf("starter share %v outside (0, 1]", c.StarterShare)
	case !(c.SharingShare > 0 && c.SharingShare <= 1):
		return c, fmt.Errorf("sharing share %v outside (0, 1]", c.SharingShare)
	case !(c.RepairSlack > 0 && c.RepairSlack <= 1):
		return c, fmt.Errorf("repair slack %v outside (0, 1]", c.RepairSlack)
	case c.LinkedTTL < 0 || c.UnlinkedTTL < 0 || c.LookupTimeout < 0:
		return c, errors.New("negative admission lookup time")
	case c.MaxLookups < 0 || c.MaxCached < 0:
		return c, errors.New("negative admission lookup bound")
	}
	return c, nil
}

// Class is what an account is to a provider's admission policy.
type Class uint8

const (
	// ClassStarter: no linked node was found (no account record, no node
	// naming the account, or the lookup failed).
	ClassStarter Class = iota
	// ClassSharing: the account record lists a node whose node record
	// names the account as its owner.
	ClassSharing
	// ClassOwn: the account that linked this provider.
	ClassOwn
	// ClassVetting: the account has a linked node that answers, but none
	// this provider has vetted (karma.Good by its own observation): it is
	// treated as a starter until one is.
	ClassVetting
	// ClassZeroed: a linked node of the account deleted shards it held
	// (karma.Malicious by this provider's observation): no new shards
	// until the strikes leave the window.
	ClassZeroed
)

func (c Class) String() string {
	switch c {
	case ClassStarter:
		return "starter"
	case ClassSharing:
		return "sharing"
	case ClassOwn:
		return "own"
	case ClassVetting:
		return "vetting"
	case ClassZeroed:
		return "zeroed"
	}
	return fmt.Sprintf("class_%d", uint8(c))
}

// ClassLookup finds out whether an account shares a node: a Link of class
// ClassSharing (a linked node answers) or ClassStarter, with the nodes
// linked to the account either way. An error counts as ClassStarter.
type ClassLookup func(ctx context.Context, account peer.ID) (Link, error)

// Link is what a lookup found of an account.
type Link struct {
	Class Class // ClassSharing or ClassStarter
	// Nodes are the nodes linked to the account (the account record names
	// them and their node records name the account), at most
	// account.MaxNodes.
	Nodes []LinkedNode
}

// LinkedNode is a node linked to an account, with the tier its record
// offers.
type LinkedNode struct {
	ID   peer.ID
	Tier int
}

// StandingOf returns a node's standing as this provider observed it.
type StandingOf func(node peer.ID) karma.Standing

// HeldOf returns the shard bytes accounts other than except state node
// keeps for them (Provider.Held).
type HeldOf func(node, except peer.ID) int64

// SetHeld has the policy credit nodes by what accounts state they hold
// (nil: by karma.ShownFloor alone). Call it before the first put.
func (a *Admission) SetHeld(held HeldOf) { a.held = held }

// MinSpread is the fewest providers an honest account spreads each
// segment's shards over: a sharing account may reference at most
// 1/MinSpread of its allowance at one provider (and a starter's 1 GiB
// gives DefaultStarterBytes).
const MinSpread = 4

// Admission is a provider's admission policy: it classes the account of
// each put that would add a new reference (own, sharing, vetting,
// starter, zeroed) and
// gives the store the matching allowance (shardstore.Allowance). Classes
// are cached per account, a bounded number of them, sharing answers for
// LinkedTTL and the others for UnlinkedTTL; concurrent puts of one account
// share one lookup, and at most MaxLookups run at once, each within
// LookupTimeout. It holds no host: the lookup is injected (LinkLookup
// reads the DHT). It is safe for concurrent use.
type Admission struct {
	cfg      AdmissionConfig
	quota    int64
	own      peer.ID
	lookup   ClassLookup
	standing StandingOf
	held     HeldOf
	clock    shardstore.Clock
	slots    chan struct{}

	mu      sync.Mutex
	cache   map[peer.ID]*classEntry
	lookups int64 // lookups started, for tests and status
	// observers are the providers trusted with test shards outside the
	// starters' share (TrustObservers).
	observers map[peer.ID]struct{}
}

type classEntry struct {
	class Class // ClassSharing or ClassStarter, as looked up
	nodes []LinkedNode
	until time.Time
	done  chan struct{} // open while the lookup runs
}

// NewAdmission returns the policy of a provider with quota bytes, linked
// to account own ("" for none), classing others with lookup and the
// standing of their nodes (nil: every node unknown, so no account earns
// more than a starter). cfg.AdmitAll is not looked at: a provider
// admitting all has no Admission.
func NewAdmission(cfg AdmissionConfig, quota int64, own peer.ID, lookup ClassLookup, standing StandingOf, clock shardstore.Clock) (*Admission, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("provider: admission: %w", err)
	}
	if lookup == nil || clock == nil || quota <= 0 {
		return nil, errors.New("provider: admission needs a lookup, a clock and a quota")
	}
	if standing == nil {
		standing = func(peer.ID) karma.Standing { return karma.Standing{} }
	}
	return &Admission{cfg: cfg, quota: quota, own: own, lookup: lookup, standing: standing, clock: clock,
		slots: make(chan struct{}, cfg.MaxLookups), cache: make(map[peer.ID]*classEntry)}, nil
}

// Config returns the policy's settings, defaults filled in.
func (a *Admission) Config() AdmissionConfig { return a.cfg }

// Lookups returns how many lookups the policy started.
func (a *Admission) Lookups() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// Classify returns account's class: from the cache while its answer
// lasts, else looked up, and then, for an account with a node that
// answers, refined by its nodes' standings now (Earn). A lookup that
// fails, or finds no slot within LookupTimeout, makes the account a
// starter.
func (a *Admission) Classify(ctx context.Context, account peer.ID) Class {
	c, _ := a.classify(ctx, account)
	return c
}

// classify returns account's class and, for ClassSharing, its earned
// allowance.
func (a *Admission) classify(ctx context.Context, account peer.ID) (Class, karma.Allowance) {
	c, al, _ := a.Explain(ctx, account)
	return c, al
}

// Explain returns account's class, the allowance its linked nodes earned
// (for an account with a node that answers) and its linked nodes, as a
// put would find them now.
func (a *Admission) Explain(ctx context.Context, account peer.ID) (Class, karma.Allowance, []LinkedNode) {
	if a.own != "" && account == a.own {
		return ClassOwn, karma.Allowance{}, nil
	}
	class, nodes := a.lookedUp(ctx, account)
	if class != ClassSharing {
		return class, karma.Allowance{}, nodes
	}
	c, al := a.Earn(account, nodes)
	return c, al, nodes
}

// Earn returns the class an account whose linked node answers has by its
// linked nodes' standings, and its allowance (karma.AccountAllowance):
// ClassZeroed while one is malicious, ClassSharing when one is vetted,
// ClassVetting otherwise. A node is credited what it shares up to
// karma.Shown of what other accounts state it holds (HeldOf; what account
// states of its own nodes does not count), docs/design.md §6.8.
func (a *Admission) Earn(account peer.ID, nodes []LinkedNode) (Class, karma.Allowance) {
	kn := make([]karma.Node, 0, len(nodes))
	vetted := false
	for _, n := range nodes {
		st := a.standing(n.ID)
		shared := karma.TierBytes(n.Tier)
		var held int64
		if a.held != nil {
			held = a.held(n.ID, account)
		}
		kn = append(kn, karma.Node{ID: n.ID.String(), Shared: shared, Shown: karma.Shown(held, shared, false), Standing: st})
		vetted = vetted || st.Vetted()
	}
	al := karma.AccountAllowance(kn, karma.DefaultStarter)
	switch {
	case al.Zeroed != "":
		return ClassZeroed, al
	case vetted:
		return ClassSharing, al
	}
	return ClassVetting, al
}

// lookedUp returns account's class and linked nodes as looked up.
func (a *Admission) lookedUp(ctx context.Context, account peer.ID) (Class, []LinkedNode) {
	for {
		a.mu.Lock()
		e := a.cache[account]
		if e != nil && e.done != nil {
			done := e.done
			a.mu.Unlock()
			// Another put of the account is looking it up: share it.
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return ClassStarter, nil
			}
		}
		if e != nil && a.clock().Before(e.until) {
			a.mu.Unlock()
			return e.class, e.nodes
		}
		e = &classEntry{done: make(chan struct{})}
		a.makeRoom()
		a.cache[account] = e
		a.mu.Unlock()
		return a.run(ctx, account, e)
	}
}

// run looks account up for entry e, which waiters share, and records the
// answer. The answer's time to live counts from when it was asked: what a
// slow lookup found is that much older already.
func (a *Admission) run(ctx context.Context, account peer.ID, e *classEntry) (Class, []LinkedNode) {
	class, ttl := ClassStarter, a.cfg.UnlinkedTTL
	asked := a.clock()
	var nodes []LinkedNode
	defer func() {
		a.mu.Lock()
		e.class, e.nodes, e.until = class, nodes, asked.Add(ttl)
		close(e.done)
		e.done = nil
		a.mu.Unlock()
	}()
	// The lookup does not end with the put that started it: others of the
	// same account may wait on it.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.LookupTimeout)
	defer cancel()
	select {
	case a.slots <- struct{}{}:
	case <-lctx.Done():
		// Every slot taken: a starter for now, and asked again soon.
		ttl = 0
		return class, nil
	}
	defer func() { <-a.slots }()
	a.mu.Lock()
	a.lookups++
	a.mu.Unlock()
	got, err := a.lookup(lctx, account)
	if err == nil {
		nodes = got.Nodes
		if got.Class == ClassSharing {
			class, ttl = ClassSharing, a.cfg.LinkedTTL
		}
	}
	return class, nodes
}

// makeRoom drops expired entries, and then any settled one, while the
// cache is full. The caller holds a.mu.
func (a *Admission) makeRoom() {
	if len(a.cache) < a.cfg.MaxCached {
		return
	}
	now := a.clock()
	for id, e := range a.cache {
		if e.done == nil && !now.Before(e.until) {
			delete(a.cache, id)
		}
	}
	for id, e := range a.cache {
		if len(a.cache) < a.cfg.MaxCached {
			return
		}
		if e.done == nil {
			delete(a.cache, id)
		}
	}
}

// Words of the refusals.
const (
	starterWho    = "an account that shares no node"
	starterWhose  = "accounts that share no node"
	starterAdvice = "run a node (jellyfish node) linked to your account to store more"
	sharingWho    = "one account, for what its nodes earned"
	sharingAdvice = "other providers take the rest; a node earns more by staying up"
	vettingWho    = "an account whose nodes this provider has not vetted yet"
	vettingWhose  = "accounts that share no vetted node"
	vettingAdvice = "a node counts once this provider has seen it answer for 7 days and pass 10 audits"
	zeroedWho     = "an account whose node lost shards it held"
	observerWho   = "an observer holding shards of this node's account, for its test shards"
	observerWhose = "observers holding shards of this node's account"
)

// Allowance returns what account may reference at the provider: the own
// account the quota; a sharing account a MinSpread-th of its earned
// allowance, at least StarterBytes and at most SharingShare of the quota;
// a starter (or vetting) account StarterBytes with all of them together
// StarterShare of the quota, except a trusted observer (TrustObservers),
// which may reference ObserverBytes outside that share; a zeroed account
// nothing new. For a repair's put, those caps are widened by RepairSlack.
// It is a shardproto.Admitter.
func (a *Admission) Allowance(ctx context.Context, account peer.ID, repair bool) shardstore.Allowance {
	c, earned := a.classify(ctx, account)
	al := a.allowanceOf(c, earned)
	if (c == ClassStarter || c == ClassVetting) && a.trusted(account) {
		al = shardstore.Allowance{Max: ObserverBytes, Group: GroupObserver, GroupMax: share(a.quota, a.cfg.StarterShare),
			Who: observerWho, Whose: observerWhose}
	}
	if repair {
		if c == ClassZeroed {
			// A zeroed account takes nothing new, but its repairs still
			// go where it holds less than a starter may: its data does
			// not wear away while its strikes last. (Any put can claim
			// to be a repair, so this is also the most a zeroed account
			// can take: a starter's cap, outside the starters' share.)
			al.Max = a.cfg.StarterBytes
		}
		al = a.forRepair(al)
	}
	return al
}

// forRepair widens al's caps by RepairSlack.
func (a *Admission) forRepair(al shardstore.Allowance) shardstore.Allowance {
	widen := func(n int64) int64 {
		if n <= 0 {
			return n
		}
		return n + int64(float64(n)*a.cfg.RepairSlack)
	}
	al.Max, al.GroupMax = widen(al.Max), widen(al.GroupMax)
	return al
}

// allowanceOf returns the allowance of class c; for ClassSharing, of an
// account that earned earned (karma.AccountAllowance).
func (a *Admission) allowanceOf(c Class, earned karma.Allowance) shardstore.Allowance {
	switch c {
	case ClassOwn:
		return shardstore.Allowance{Group: GroupOwn}
	case ClassSharing:
		return shardstore.Allowance{Max: a.SharingCap(earned.Bytes), Group: GroupSharing, Who: sharingWho, Advice: sharingAdvice}
	case ClassZeroed:
		return shardstore.Allowance{Max: 1, Group: GroupSharing, Who: zeroedWho, Advice: "no new shards " + untilWords(earned)}
	case ClassVetting:
		return shardstore.Allowance{Max: a.cfg.StarterBytes, Group: GroupStarter, GroupMax: share(a.quota, a.cfg.StarterShare),
			Who: vettingWho, Whose: vettingWhose, Advice: vettingAdvice}
	}
	return shardstore.Allowance{Max: a.cfg.StarterBytes, Group: GroupStarter, GroupMax: share(a.quota, a.cfg.StarterShare),
		Who: starterWho, Whose: starterWhose, Advice: starterAdvice}
}

// AllowanceOf returns the allowance of class c, for ClassSharing that of
// an account that earned allowance bytes.
func (a *Admission) AllowanceOf(c Class, allowance int64) shardstore.Allowance {
	return a.allowanceOf(c, karma.Allowance{Bytes: allowance})
}

// SharingCap returns what a sharing account that earned allowance bytes
// may reference here: a MinSpread-th of it, at least StarterBytes (a
// vetted node never gives less than no node) and at most SharingShare of
// the quota.
func (a *Admission) SharingCap(allowance int64) int64 {
	return min(share(a.quota, a.cfg.SharingShare), max(a.cfg.StarterBytes, allowance/MinSpread))
}

func untilWords(al karma.Allowance) string {
	if al.Until.IsZero() {
		return "for now"
	}
	return "until " + al.Until.UTC().Format(time.DateOnly)
}

// share returns f of n bytes, at least 1 (a zero cap would be no cap).
func share(n int64, f float64) int64 {
	return max(1, int64(float64(n)*f))
}
