// Package testnet runs N real Jellyfish nodes in one process, on 127.0.0.1
// with random TCP and QUIC ports and a data directory each, bootstrapped to
// one another. Tests use New; the "jellyfish testnet" command uses Start,
// which needs no *testing.T.
//
// A Network can Kill a node (close it at once), Restart it with the same
// identity, data directory and, when they are free, the same ports,
// Partition groups of nodes from each other with connection gaters and Heal
// them. WaitFor polls a condition under a context; tests use it instead of
// sleeping while the network converges. Options.OnStart attaches extra
// services (the shard protocol, later the backend) to every node each time
// it starts.
package testnet
