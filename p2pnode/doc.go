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
//   - localnet: N real nodes in one process on 127.0.0.1 with kill, restart
//     and partition helpers, for "jellyfish testnet" and "jellyfish demo";
//     testnet: the harness that gives a test such a network (it links
//     package testing, so only tests and fstests import it).
//   - atomicfile: replacing a small file with fsync, for every package
//     that keeps state in files.
//   - nodestatus: what a running provider node knows about itself (store,
//     shard service, peers, records, clock, background rounds) as a
//     status page, JSON and Prometheus metrics, for its operator.
//
// Nothing under p2pnode imports rclone or the backend; layers_test.go
// checks that, and the other layering rules, with go list.
package p2pnode
