package shardproto

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

func testLimits() challengeLimits {
	return challengeLimits{interval: 30 * 24 * time.Hour, burst: 10 << 20, rate: 1 << 20, concurrent: 2, records: 1000, budgets: 100}
}

func addrReq(s string) requester { return requesterOf("", netip.MustParsePrefix(s)) }

func TestChallengerOncePerIntervalPerOwnerAndShard(t *testing.T) {
	c := newChallenger(testLimits())
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := shardstore.Owner{1}, shardstore.Owner{2}
	id, other := codec.ShardID{1}, codec.ShardID{2}
	who := addrReq("10.0.0.1/32")
	admit := func(o shardstore.Owner, id codec.ShardID, at time.Time) error {
		release, err := c.admit(o, id, 1<<20, who, at)
		if err == nil {
			release()
		}
		return err
	}
	if err := admit(a, id, now); err != nil {
		t.Fatal(err)
	}
	// The same owner and shard: refused until the interval has passed,
	// from any address.
	if err := admit(a, id, now.Add(30*24*time.Hour-time.Hour)); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("second challenge within the interval: %v", err)
	}
	if _, err := c.admit(a, id, 1<<20, addrReq("10.9.9.9/32"), now.Add(time.Hour)); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("second challenge from another address: %v", err)
	}
	// Another owner of the shard, or another shard: a challenge of their own.
	if err := admit(b, id, now); err != nil {
		t.Fatal(err)
	}
	if err := admit(a, other, now); err != nil {
		t.Fatal(err)
	}
	if err := admit(a, id, now.Add(30*24*time.Hour+time.Hour)); err != nil {
		t.Fatalf("challenge after the interval: %v", err)
	}
	st := c.counts()
	if st.Admitted != 4 || st.TooSoon != 2 || st.Busy != 0 || st.HashedBytes != 4<<20 {
		t.Fatalf("counts %+v", st)
	}
	// A clock moved back two months: a pair challenged then waits out its
	// own interval, even behind a record dated later.
	c = newChallenger(testLimits())
	if err := admit(a, id, now); err != nil {
		t.Fatal(err)
	}
	back := now.Add(-60 * 24 * time.Hour)
	if err := admit(b, id, back); err != nil {
		t.Fatal(err)
	}
	if err := admit(b, id, back.Add(29*24*time.Hour)); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("within the interval after the clock moved back: %v", err)
	}
	if err := admit(b, id, back.Add(31*24*time.Hour)); err != nil {
		t.Fatalf("after the interval, behind a later record: %v", err)
	}
	if err := admit(a, id, back.Add(31*24*time.Hour)); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("a record dated after the clock: %v", err)
	}
}

func TestChallengerBudgetPerRequester(t *testing.T) {
	lim := testLimits() // 10 MiB at once, 1 MiB/s
	c := newChallenger(lim)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const size = 3 << 20
	who, elsewhere := addrReq("10.0.0.1/32"), addrReq("2001:db8::/56")
	n := 0
	admit := func(w requester, at time.Time) error {
		n++
		release, err := c.admit(shardstore.Owner{byte(n)}, codec.ShardID{byte(n)}, size, w, at)
		if err == nil {
			release()
		}
		return err
	}
	for i := range 3 {
		if err := admit(who, now); err != nil {
			t.Fatalf("challenge %d within the burst: %v", i, err)
		}
	}
	// 1 MiB left: a fourth 3 MiB shard waits for the budget.
	if err := admit(who, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("challenge past the budget: %v", err)
	}
	if err := admit(elsewhere, now); err != nil {
		t.Fatalf("another address's budget: %v", err)
	}
	if err := admit(who, now.Add(1900*time.Millisecond)); !errors.Is(err, ErrBusy) {
		t.Fatalf("challenge before 2 MiB were earned back: %v", err)
	}
	if err := admit(who, now.Add(2100*time.Millisecond)); err != nil {
		t.Fatalf("challenge after 2 MiB were earned back: %v", err)
	}
	// Over a long time a requester gets at most burst + rate × elapsed.
	c = newChallenger(lim)
	var hashed int64
	for ms := 0; ms <= 60_000; ms += 100 {
		if admit(who, now.Add(time.Duration(ms)*time.Millisecond)) == nil {
			hashed += size
		}
	}
	if bound := lim.burst + 60*lim.rate; hashed > bound || hashed < bound-size {
		t.Fatalf("a requester had %d bytes hashed in 60 s, want just under %d", hashed, bound)
	}
	// A clock that went back earns nothing.
	c = newChallenger(lim)
	for range 3 {
		admit(who, now)
	}
	if err := admit(who, now.Add(-time.Hour)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a clock moved back refilled the budget: %v", err)
	}
}

func TestChallengerConcurrencyAndMemory(t *testing.T) {
	lim := testLimits()
	lim.records, lim.budgets = 3, 2
	c := newChallenger(lim)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	o := shardstore.Owner{1}
	// Two at once; a third waits for one to end.
	r1, err1 := c.admit(o, codec.ShardID{1}, 1, addrReq("10.0.0.1/32"), now)
	r2, err2 := c.admit(o, codec.ShardID{2}, 1, addrReq("10.0.0.1/32"), now)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := c.admit(o, codec.ShardID{3}, 1, addrReq("10.0.0.1/32"), now); !errors.Is(err, ErrBusy) {
		t.Fatalf("third at once: %v", err)
	}
	r1()
	r3, err := c.admit(o, codec.ShardID{3}, 1, addrReq("10.0.0.1/32"), now)
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	// At most 3 records: a fourth pair pushes out the oldest, which may be
	// challenged again (its budget still applies).
	if r, err := c.admit(o, codec.ShardID{4}, 1, addrReq("10.0.0.1/32"), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
	if len(c.last) != 3 || len(c.order) != 3 {
		t.Fatalf("%d records, %d in order, cap 3", len(c.last), len(c.order))
	}
	if r, err := c.admit(o, codec.ShardID{1}, 1, addrReq("10.0.0.1/32"), now.Add(time.Second)); err != nil {
		t.Fatalf("the forgotten pair: %v", err)
	} else {
		r()
	}
	if _, err := c.admit(o, codec.ShardID{4}, 1, addrReq("10.0.0.1/32"), now.Add(time.Second)); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("a remembered pair: %v", err)
	}
	// Budgets of at most 2 requesters that are not full: a third requester
	// waits until one has refilled.
	big := lim.burst
	n := byte(10)
	drain := func(w requester, at time.Time) error {
		n++
		r, err := c.admit(o, codec.ShardID{n}, big, w, at)
		if err == nil {
			r()
		}
		return err
	}
	c = newChallenger(lim)
	if drain(addrReq("10.0.0.1/32"), now) != nil || drain(addrReq("10.0.0.2/32"), now) != nil {
		t.Fatal("first two requesters refused")
	}
	if err := drain(addrReq("10.0.0.3/32"), now); !errors.Is(err, ErrBusy) {
		t.Fatalf("third requester with two budgets in use: %v", err)
	}
	if err := drain(addrReq("10.0.0.3/32"), now.Add(time.Minute)); err != nil {
		t.Fatalf("third requester once the others refilled: %v", err)
	}
	if len(c.budgets) > lim.budgets {
		t.Fatalf("%d budgets kept, cap %d", len(c.budgets), lim.budgets)
	}
}
