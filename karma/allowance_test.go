package karma

import (
	"errors"
	"go/build"
	"strings"
	"testing"
	"time"
)

func TestTiers(t *testing.T) {
	cases := []struct {
		b    int64
		tier int
	}{{0, -1}, {GiB - 1, -1}, {GiB, 0}, {2*GiB - 1, 0}, {2 * GiB, 1}, {3 * GiB, 1}, {1 << 50, 20}, {1 << 60, MaxTier}}
	for _, c := range cases {
		if got := TierOf(c.b); got != c.tier {
			t.Errorf("TierOf(%d) = %d, want %d", c.b, got, c.tier)
		}
	}
	if TierBytes(-3) != GiB || TierBytes(3) != 8*GiB || TierBytes(99) != TierBytes(MaxTier) {
		t.Fatal("TierBytes")
	}
}

func good(uptime float64) Standing {
	return Standing{KnownEpochs: WindowEpochs, Uptime: uptime, AuditsPassed: 60, State: Good}
}

const MiB = 1 << 20

func TestShown(t *testing.T) {
	cases := []struct {
		held, declared int64
		full           bool
		want           int64
	}{
		{0, 64 * GiB, false, ShownFloor},
		{10 * GiB, 64 * GiB, false, 22 * GiB},
		{40 * GiB, 64 * GiB, false, 64 * GiB},
		{10 * GiB, 64 * GiB, true, 10 * GiB},
		{0, GiB, false, GiB},
		{1 << 62, 1 << 50, false, 1 << 50}, // no overflow at the far side
		{-5, 64 * GiB, false, ShownFloor},
	}
	for _, c := range cases {
		if got := Shown(c.held, c.declared, c.full); got != c.want {
			t.Errorf("Shown(%d, %d, %v) = %d, want %d", c.held, c.declared, c.full, got, c.want)
		}
	}
}

func TestCredit(t *testing.T) {
	cases := []struct {
		name string
		n    Node
		want int64
	}{
		{"8 GiB at 2/3", Node{Shared: 8 * GiB, Shown: 8 * GiB, Standing: good(2.0 / 3)}, 5461 * MiB},
		{"8 GiB always on", Node{Shared: 8 * GiB, Shown: 8 * GiB, Standing: good(1)}, 8 * GiB},
		{"shown less", Node{Shared: 64 * GiB, Shown: 3 * GiB, Standing: good(1)}, 3 * GiB},
		{"nothing shown", Node{Shared: 64 * GiB, Shown: -1, Standing: good(1)}, 0},
		{"not vetted", Node{Shared: 8 * GiB, Shown: 8 * GiB, Standing: Standing{KnownEpochs: 5, Uptime: 1, State: Vetting}}, 0},
		{"1 GiB at 0.9", Node{Shared: GiB, Shown: GiB, Standing: good(0.9)}, 921 * MiB},
		{"uptime out of range", Node{Shared: 4 * GiB, Shown: 4 * GiB, Standing: good(7)}, 4 * GiB},
	}
	for _, c := range cases {
		if got := Credit(c.n); got != c.want {
			t.Errorf("%s: %d MiB, want %d MiB", c.name, got/MiB, c.want/MiB)
		}
	}
}

func TestAccountAllowance(t *testing.T) {
	a := AccountAllowance(nil, DefaultStarter)
	if a.Bytes != DefaultStarter || !a.Starter || !strings.Contains(a.Reason(), "starter") {
		t.Fatalf("no nodes: %+v", a)
	}
	// A new node, not vetted yet, does not take the starter away.
	fresh := Node{ID: "n1", Shared: 16 * GiB, Shown: 16 * GiB, Standing: Standing{State: Vetting}}
	if a := AccountAllowance([]Node{fresh}, DefaultStarter); a.Bytes != DefaultStarter {
		t.Fatalf("an unvetted node: %d", a.Bytes)
	}
	n1 := Node{ID: "n1", Shared: 16 * GiB, Shown: 16 * GiB, Standing: good(0.7)}
	n2 := Node{ID: "n2", Shared: 4 * GiB, Shown: 4 * GiB, Standing: good(1)}
	a = AccountAllowance([]Node{n1, n2}, DefaultStarter)
	if a.Bytes != (11468+4096)*MiB || a.Starter || a.Zeroed != "" {
		t.Fatalf("two nodes: %+v", a)
	}
	// One node with three strikes zeroes the whole account, and says until
	// when.
	until := t0.Add(20 * 24 * time.Hour)
	bad := Node{ID: "n3", Shared: 64 * GiB, Shown: 64 * GiB, Standing: Standing{State: Malicious, Until: until, Uptime: 1, KnownEpochs: 30}}
	a = AccountAllowance([]Node{n1, n2, bad}, DefaultStarter)
	if a.Bytes != 0 || a.Zeroed != "n3" || !a.Until.Equal(until) || !strings.Contains(a.Reason(), "2026-12-24") {
		t.Fatalf("a malicious node: %+v (%s)", a, a.Reason())
	}
}

// Three strikes zero the owner's allowance, and 30 days after the oldest
// of them it comes back, computed end to end from witness summaries.
func TestAllowanceRecoversAfterTheWindow(t *testing.T) {
	now := t0
	last := EpochOf(now) - 1
	strikes := map[Epoch][]ShardRef{last - 8: {{1}}, last - 5: {{2}}, last - 2: {{3}}}
	node := func(at time.Time) Node {
		return Node{ID: "n", Shared: 8 * GiB, Shown: 8 * GiB, Standing: Assess("s", at, strikeRun(at, Witnesses, strikes))}
	}
	if a := AccountAllowance([]Node{node(now)}, DefaultStarter); a.Bytes != 0 {
		t.Fatalf("after three strikes: %d", a.Bytes)
	}
	back := (last - 8).End().Add(Window)
	if a := AccountAllowance([]Node{node(back.Add(-time.Second))}, DefaultStarter); a.Bytes != 0 {
		t.Fatalf("a second before the strikes expire: %d", a.Bytes)
	}
	if a := AccountAllowance([]Node{node(back)}, DefaultStarter); a.Bytes != 8*GiB {
		t.Fatalf("once the strikes expired: %d GiB", a.Bytes/GiB)
	}
}

func TestLinkedNodes(t *testing.T) {
	owner := map[string]string{"a": "acct", "b": "acct", "c": "other", "d": "acct"}
	got := LinkedNodes("acct", []string{"a", "c", "x", "a", "d"}, owner)
	if strings.Join(got, ",") != "a,d" {
		t.Fatalf("linked %v", got)
	}
	// A node both accounts name counts only for the one its record names.
	if len(LinkedNodes("other", []string{"a", "b"}, owner)) != 0 {
		t.Fatal("a node counted for an account its record does not name")
	}
}

func TestShardBytes(t *testing.T) {
	const seg = 64 << 20
	size := int64(1 << 30)
	if r := float64(ShardBytes(size, 10, 20, seg, 0)) / float64(ShardBytes(size, 10, 10, seg, 0)); r != 1.5 {
		t.Fatalf("10+20 costs %.3f× what 10+10 does", r)
	}
	if got := ShardBytes(size, 10, 20, seg, 0); got < 3*size || got > 3*size+30*16 {
		t.Fatalf("1 GiB at 10+20: %d", got)
	}
	if ShardBytes(1, 10, 20, seg, 24) != 30*25 || ShardBytes(0, 10, 20, seg, 24) != 0 {
		t.Fatal("a one-byte file costs 30 one-byte shards plus headers")
	}
}

type fakeChecker struct {
	at  time.Time
	err error
}

func (f fakeChecker) CheckDeletedPart(DeletedPart) (time.Time, error) { return f.at, f.err }

func TestCheckDeletedPart(t *testing.T) {
	now := t0
	ok := DeletedPart{Holder: "h", Shard: ShardRef{1}, Receipt: []byte("r"), Answer: []byte("a")}
	if _, err := CheckDeletedPart(ok, fakeChecker{at: now.Add(-time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		r DeletedPart
		c fakeChecker
	}{
		"no receipt":         {DeletedPart{Holder: "h", Answer: []byte("a")}, fakeChecker{at: now}},
		"no answer":          {DeletedPart{Holder: "h", Receipt: []byte("r")}, fakeChecker{at: now}},
		"no holder":          {DeletedPart{Receipt: []byte("r"), Answer: []byte("a")}, fakeChecker{at: now}},
		"oversized":          {DeletedPart{Holder: "h", Receipt: make([]byte, MaxEvidence+1), Answer: []byte("a")}, fakeChecker{at: now}},
		"forged":             {ok, fakeChecker{err: errors.New("signature does not verify")}},
		"answered long ago":  {ok, fakeChecker{at: now.Add(-Window - time.Second)}},
		"answered in future": {ok, fakeChecker{at: now.Add(EpochLength + time.Second)}},
	}
	for name, c := range bad {
		if _, err := CheckDeletedPart(c.r, c.c, now); !errors.Is(err, ErrNoEvidence) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestContainment(t *testing.T) {
	h := time.Hour
	var c Containment
	// Three silent tries over a day, answering otherwise: deleted.
	for i, at := range []time.Duration{0, 12 * h, 24 * h} {
		v := c.Record(t0.Add(at), ShardSilent)
		if want := map[bool]ContainmentVerdict{true: Silenced, false: Contained}[i == 2]; v != want {
			t.Fatalf("try %d: %v", i, v)
		}
	}
	// Three quick tries count once each gap, and never before a day.
	var q Containment
	for _, at := range []time.Duration{0, time.Minute, 2 * time.Minute, 3 * h, 7 * h, 20 * h} {
		if q.Record(t0.Add(at), ShardSilent) != Contained {
			t.Fatalf("silenced after tries at %s", at)
		}
	}
	if q.Tries != 3 || q.Record(t0.Add(24*h), ShardSilent) != Silenced {
		t.Fatalf("%d tries counted", q.Tries)
	}
	// Away entirely: no try counts.
	var a Containment
	for i := range 10 {
		if a.Record(t0.Add(time.Duration(i)*12*h), HolderAway) != Contained || a.Tries != 0 {
			t.Fatal("downtime counted as silence")
		}
	}
	// An answer releases the shard for good.
	var r Containment
	r.Record(t0, ShardSilent)
	if r.Record(t0.Add(h), ShardAnswered) != Released || r.Record(t0.Add(48*h), ShardSilent) != Released {
		t.Fatal("an answered shard is still contained")
	}
}

// TestPure keeps the package free of hosts, networks and rclone.
func TestPure(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if strings.Contains(imp, ".") {
			t.Errorf("karma imports %s: it must need only the standard library", imp)
		}
		if strings.HasPrefix(imp, "net") || imp == "os" {
			t.Errorf("karma imports %s", imp)
		}
	}
}
