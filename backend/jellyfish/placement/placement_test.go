package placement

import (
	"slices"
	"testing"
)

func TestAssignKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		nodes int
		seg   uint64
		total int
		want  []int
	}{
		{5, 0, 3, []int{0, 1, 2}},
		{5, 1, 3, []int{3, 4, 0}},
		{4, 0, 6, []int{0, 1, 2, 3, 0, 1}},
		{4, 3, 6, []int{2, 3, 0, 1, 2, 3}},
		{1, 7, 3, []int{0, 0, 0}},
	} {
		if got := Assign(c.nodes, 0, c.seg, c.total); !slices.Equal(got, c.want) {
			t.Errorf("Assign(%d, %d, %d) = %v, want %v", c.nodes, c.seg, c.total, got, c.want)
		}
	}
}

func TestCountsEvenAndDistinct(t *testing.T) {
	for nodes := 1; nodes <= 40; nodes++ {
		for seg := range uint64(7) {
			c := Counts(nodes, 0, seg, 30)
			lo, hi := 30/nodes, (30+nodes-1)/nodes
			sum := 0
			for _, n := range c {
				sum += n
				if n != 0 && (n < lo || n > hi) || n == 0 && nodes <= 30 {
					t.Fatalf("%d nodes, segment %d: counts %v not even", nodes, seg, c)
				}
			}
			if sum != 30 {
				t.Fatalf("%d nodes: %d shards placed", nodes, sum)
			}
		}
	}
}

// TestSaltSpreadsObjects: objects with different salts start on different
// nodes, and the salt never changes how evenly one segment is spread.
func TestSaltSpreadsObjects(t *testing.T) {
	starts := map[int]bool{}
	for salt := range uint64(60) {
		a := Assign(60, salt*7919, 0, 30)
		starts[a[0]] = true
		seen := map[int]bool{}
		for _, n := range a {
			if seen[n] {
				t.Fatalf("salt %d: node %d twice", salt, n)
			}
			seen[n] = true
		}
		if !slices.Equal(Counts(7, salt, 3, 30), rotate(Counts(7, 0, 3, 30), int(salt%7))) {
			t.Fatalf("salt %d changes the spread", salt)
		}
	}
	if len(starts) < 30 {
		t.Fatalf("60 salts started on only %d nodes", len(starts))
	}
}

func rotate(c []int, by int) []int {
	out := make([]int, len(c))
	for i := range c {
		out[(i+by)%len(c)] = c[i]
	}
	return out
}
