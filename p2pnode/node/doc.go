// Package node wires one Jellyfish network node: a libp2p host, the private
// Kademlia DHT that stores Jellyfish records, bootstrapping, the record
// republisher and confirmed record writes.
//
// The pieces have their own small constructors (LoadOrCreateIdentity,
// NewHost, OpenDatastore, NewDHT, NewRepublisher) so that each can be used
// and tested alone; New assembles them from a Config and Close tears them
// down. A Node owns nothing beyond them: services such as the shard
// protocol receive Host() and DHT() from the caller and may be handed to
// Attach so they are closed with the node.
//
// The DHT speaks "/jellyfish/kad/1.0.0", never the public IPFS DHT, has no
// default bootstrap peers, validates only keys in the "jf" namespace (see
// package record) and keeps records in a Pebble database under
// <datadir>/dht, written with fsync so an accepted PUT survives a crash.
// The store is bounded: per kind, per publisher and in total
// (Config.RecordLimits), it refuses records under new keys once full and
// always takes updates of stored keys and the node's own records. The
// node answers the mark protocol (markproto) from its high-water marks,
// which outlive the records, are bounded the same way (Config.MarkLimits)
// and are pruned once they protect nothing (PruneMarks), and PeerMarks
// asks the peers closest to a key for theirs. The republisher streams the
// store a page at a time and re-puts a few records at once.
package node
