package btree_test

import (
	"context"
	"fmt"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns/btree"
)

func Example() {
	ctx := context.Background()
	store := &btree.MemStore{}
	size := func(key, value []byte) btree.Summary { return btree.Summary{1, uint64(len(value))} }
	empty, err := btree.New(btree.Config{Store: store, Summarize: size}, nil)
	if err != nil {
		panic(err)
	}
	v1, res, err := empty.Apply(ctx, []btree.Mutation{
		{Key: []byte("docs/a.txt"), Value: []byte("hello")},
		{Key: []byte("docs/b.txt"), Value: []byte("world!")},
		{Key: []byte("notes.md"), Value: []byte("#")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("stored", len(res.Written), "node")

	v2, res, err := v1.Apply(ctx, []btree.Mutation{{Key: []byte("docs/a.txt"), Delete: true}})
	if err != nil {
		panic(err)
	}
	fmt.Println("stored", len(res.Written), "node, replaced", len(res.Replaced))

	v2.Ascend(ctx, []byte("docs/"), []byte("docs0"), func(key, value []byte) error {
		fmt.Printf("%s: %s\n", key, value)
		return nil
	})
	sum, _ := v2.SummaryRange(ctx, []byte("docs/"), []byte("docs0"))
	fmt.Println("docs/ holds", sum[0], "files of", sum[1], "bytes")

	// The old version is still there.
	old, _ := v1.WithRoot(v1.Root())
	value, ok, _ := old.Get(ctx, []byte("docs/a.txt"))
	fmt.Printf("v1 has docs/a.txt: %v %s\n", ok, value)
	// Output:
	// stored 1 node
	// stored 1 node, replaced 1
	// docs/b.txt: world!
	// docs/ holds 1 files of 6 bytes
	// v1 has docs/a.txt: true hello
}
