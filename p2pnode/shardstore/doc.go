// Package shardstore is the on-disk shard store of a Jellyfish provider node.
//
// A Disk keeps content-addressed shards under one directory, opened as an
// os.Root so that no name can traverse out of it or follow a symbolic link
// that leaves it. Shards are named only by their validated codec.ShardID;
// nothing read from the network is ever used as a path. Beside every shard
// the store keeps a small versioned metadata record naming the owners that
// reference the shard and their leases, and, once a proof was asked for,
// its outboard hash tree (codec.Tree), so range proofs and audit answers
// read only the leaves they cover.
//
// Layout under the store directory:
//
//	tmp/                    temporary files; emptied when the store opens
//	shards/ab/<id>          shard bytes (ab = first two hex characters of id)
//	shards/ab/<id>.meta     metadata (owners, leases, size, stored-at)
//	shards/ab/<id>.tree     outboard tree, a checksummed cache built by the
//	                        first proof; missing or damaged ones are rebuilt
//
// A put streams its body: each chunk is written to a temporary file and
// hashed, so a put holds PutMemory(size) bytes (one chunk), not the shard,
// and the ID is checked when the last byte is in.
//
// Writes are atomic: the shard bytes are written under tmp/, synced and
// renamed into place; then the metadata record, the commit point, is
// written and synced under its own name, and the directory synced. Later
// metadata updates go through tmp/ and a rename; a renewal writes all its
// records first and syncs them, then their renames, together (one syncfs
// each on Linux), so its syncs do not grow with its shards. On open, shard files
// without a valid metadata record and everything under tmp/ are removed, so
// a crash never leaves a half shard under its real name.
//
// The shared space is a quota chosen from exponentially growing tiers
// (TierBytes): space is reserved before a shard body is read, so concurrent
// puts never exceed it, and an admitted put that sends its body completes.
// The reservations of puts in flight are capped per owner and per source
// (the network a put came from, ContextWithSource) to a share of the free
// space (WithReservationShare), so that a few requesters cannot hold it
// all. Bytes are accounted per Owner, an opaque fixed-size key of the
// account that stored the shard.
//
// A put may carry its owner's Allowance (ContextWithAllowance), which a
// provider's admission policy decides: a cap on what the owner references
// and one on what its group of owners references together. A put that adds
// a reference beyond either fails with an *AllowanceError
// (ErrOverAllowance) before its body is read; the check counts puts in
// flight and is made in the same step as the quota's. A put of a shard
// the owner references already, and a renewal, is never refused for it.
//
// Store and its one-method parts (Putter, Fetcher, Statter, ...) are the
// owner's view of a holder. Disk.For returns such a view of the local store;
// the shard protocol client offers the same view of a remote holder, so
// placement and repair can be tested against either.
package shardstore
