// Package btree is a persistent copy-on-write B+tree: a sorted map from
// byte-string keys to byte-string values whose nodes are immutable objects
// in a Store, known only by the opaque references the Store returns.
//
// A change rewrites only the nodes on the paths from the changed leaves to
// the root (and a neighbour where a node left too small is merged); every
// other subtree keeps its reference. So an old root stays a readable
// snapshot for as long as its nodes are stored, and the nodes a change
// stored and the ones it left behind are known exactly (Result).
//
// # Structure
//
// Leaves (level 0) hold items of key and value; an internal node at level
// l holds, per child at level l-1, the smallest key of the child's
// subtree, the child's reference and the child's Summary. The child of
// item i holds the keys in [key i, key i+1). All leaves are at level 0 and
// the root's level is the tree's height less one; an empty tree has no
// root.
//
// A node whose encoding grows over Config.MaxNodeSize is split into nodes
// of 3/4 to all of Config.TargetNodeSize, cut at short keys. A new node
// left under a quarter of the target (or an internal node left with one
// item) is merged with an adjacent sibling, a new one if there is one, and
// split again if that makes it too big; two adjacent new nodes that fit in
// the target are stored as one. Adjacent siblings that a change rewrites
// anyway pool their children first, so small nodes merge across them too.
// A root left with one child gives way to it, repeatedly, and a root that
// splits gets a new root above it. A change that deletes most keys of a
// tree much wider than its rewritten parents can still leave small nodes;
// later changes that touch them merge them.
//
// # Node format (version 1)
//
//	"JFbt" | version u8 (1) | level u8 (0 = leaf, ≤ 32) | item count uvarint |
//	leaf item:      shared uvarint | suffix length uvarint | suffix | value length uvarint | value
//	internal item:  shared uvarint | suffix length uvarint | suffix | ref length uvarint | ref | 4 × summary uvarint
//
// An item's key is the previous item's key[:shared] followed by suffix (the
// first item of a node has shared = 0). uvarint is the encoding of
// encoding/binary's AppendUvarint. Keys are strictly ascending inside a
// node; an internal item's key is the smallest key of its child's subtree.
//
// The encoding is canonical: uvarints in their shortest form and shared
// the length of the longest common prefix of the two keys. A decoder
// refuses, with an error wrapping ErrFormat, before allocating for it:
// a node over MaxNodeBytes (4 MiB); a key over MaxKey (16 KiB); a value
// over MaxValue (1 MiB); a reference over MaxRef (64 KiB) or empty; keys
// of one node summing, written out in full, over MaxNodeKeys (4 MiB); a
// level over MaxLevel; an item count more than the remaining bytes could
// hold; shared over the previous key's length or not canonical; keys not
// ascending; an empty node; trailing bytes; and an unknown magic or
// version. The encoder refuses the same, so whatever it stores can be read.
package btree
