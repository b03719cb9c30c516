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
		if got := Assign(c.nodes, c.seg, c.total); !slices.Equal(got, c.want) {
			t.Errorf("Assign(%d, %d, %d) = %v, want %v", c.nodes, c.seg, c.total, got, c.want)
		}
	}
}

func TestCountsEvenAndDistinct(t *testing.T) {
	for nodes := 1; nodes <= 40; nodes++ {
		for seg := range uint64(7) {
			c := Counts(nodes, seg, 30)
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
