package jellyfish

import "testing"

// TestStorable: the shard bytes k+m segments can still use on providers'
// rooms, one shard of a segment per provider.
func TestStorable(t *testing.T) {
	rep := func(v int64, n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	for _, c := range []struct {
		name  string
		rooms []int64
		k, m  int
		want  int64
	}{
		{"as many providers as shards", rep(100, 8), 6, 2, 800},
		{"more providers: all of it", rep(100, 10), 6, 2, 1000},
		{"one large provider holds one shard of each segment", append([]int64{1000}, rep(10, 7)...), 6, 2, 80},
		{"fewer providers than shards", rep(100, 7), 6, 2, 0},
		{"a full provider leaves too few", append([]int64{0}, rep(100, 7)...), 6, 2, 0},
		{"nothing free", rep(0, 30), 10, 20, 0},
		{"10+20 over 40 providers of 1 GiB: all but rounding", rep(1<<30, 40), 10, 20, 30 * ((40 << 30) / 30)},
	} {
		if got := storable(c.rooms, c.k, c.m); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
