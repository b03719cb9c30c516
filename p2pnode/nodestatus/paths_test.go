package nodestatus

import (
	"fmt"
	"testing"
	"time"
)

// TestLimitPaths: of 1,000 connected peers the page lists maxPaths,
// hole-punched ones first, then relayed, then direct, each kind by peer,
// and counts the rest; at exactly maxPaths nothing is left out.
func TestLimitPaths(t *testing.T) {
	var paths []PeerPath
	kinds := []string{"direct", "relayed", "hole-punched"}
	for i := range 1000 {
		// 40 punched, 80 relayed, the rest direct.
		kind := kinds[0]
		switch {
		case i%25 == 0:
			kind = kinds[2]
		case i%25 < 3:
			kind = kinds[1]
		}
		paths = append(paths, PeerPath{Peer: fmt.Sprintf("peer-%04d", 999-i), Path: kind})
	}
	got, omitted := limitPaths(paths)
	if len(got) != maxPaths || omitted != 1000-maxPaths {
		t.Fatalf("%d listed, %d omitted", len(got), omitted)
	}
	for i, p := range got {
		want := "direct"
		switch {
		case i < 40:
			want = "hole-punched"
		case i < 40+80:
			want = "relayed"
		}
		if p.Path != want {
			t.Fatalf("entry %d is %s, want %s", i, p.Path, want)
		}
		if i > 0 && p.Path == got[i-1].Path && p.Peer < got[i-1].Peer {
			t.Fatalf("entry %d (%s) sorts before %d (%s)", i, p.Peer, i-1, got[i-1].Peer)
		}
	}
	if got, omitted := limitPaths(paths[:maxPaths]); len(got) != maxPaths || omitted != 0 {
		t.Fatalf("at the limit: %d listed, %d omitted", len(got), omitted)
	}
}

// TestDirectPath: a direct connection is hole-punched when it opened at
// most punchOpens before the punch to its peer ended (or after), and
// direct a nanosecond earlier or with no punch.
func TestDirectPath(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		opened  time.Time
		punched bool
		want    string
	}{
		{at.Add(time.Second), true, "hole-punched"},
		{at.Add(-punchOpens), true, "hole-punched"},
		{at.Add(-punchOpens - time.Nanosecond), true, "direct"},
		{at, false, "direct"},
	} {
		if got := directPath(c.opened, at, c.punched); got != c.want {
			t.Errorf("opened %v, punched %v: %s, want %s", c.opened.Sub(at), c.punched, got, c.want)
		}
	}
}
