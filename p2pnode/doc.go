// Package p2pnode is the root of Jellyfish's network layer.
//
// The work is split into small packages that import downwards only:
//
//   - record: the one format for small signed DHT records (node, and later
//     login, account, head and karma records), their DHT keys, the validator
//     registered under the "jf" namespace, the deterministic Select rule and
//     the high-water marks that refuse rolled-back records.
//   - node: a libp2p host (TCP and QUIC, Noise and TLS, yamux, resource and
//     connection managers), the private Kademlia DHT on the "/jellyfish"
//     protocol prefix with an on-disk record store, bootstrapping, the
//     record republisher and confirmed writes. Other services (the shard
//     protocol, auditing) receive the host and DHT and are attached by the
//     caller; the node does not own them.
//   - testnet: N real nodes in one process on 127.0.0.1 with kill, restart
//     and partition helpers, for tests and for "jellyfish testnet".
//
// Nothing under p2pnode imports rclone.
package p2pnode
