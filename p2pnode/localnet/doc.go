// Package localnet runs N real Jellyfish nodes in one process, on 127.0.0.1
// with random TCP and QUIC ports and a data directory each, bootstrapped to
// one another. The `jellyfish testnet` and `jellyfish demo` commands run it
// in the shipped binary, so it must not import package testing; tests get
// a Network through p2pnode/testnet.New, which adds a *testing.T's
// temporary folder and cleanup.
//
// A Network can Kill a node (close it at once), Restart it with the same
// identity, data directory and, when they are free, the same ports,
// Partition groups of nodes from each other with connection gaters and Heal
// them. WaitFor polls a condition under a context; tests use it instead of
// sleeping while the network converges. Options.OnStart attaches extra
// services (the shard protocol, later the backend) to every node each time
// it starts.
package localnet
