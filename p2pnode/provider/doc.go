// Package provider composes a Jellyfish provider node: what `jellyfish node`
// runs on top of a p2pnode/node.Node.
//
// Attach adds four things to a running node and hands itself to the node,
// so node.Close closes it: a shardstore.Disk in <datadir>/shards with the
// offered quota tier, the shard protocol service (shardproto) serving that
// store on the node's host, a loop that signs and publishes the node
// record (owner account, tier, addresses) at start and again well inside
// the record's expiry, and a loop that collects shards: an owner's
// reference goes once its lease ended a grace period (30 days) ago, and a
// shard with no reference left is deleted. Unless Config.Admission says
// AdmitAll, the service asks an Admission policy what each account may
// store: the provider's own account its quota, an account that shares a
// node (its account record lists a node whose node record names it) a
// share of it, any other account a small cap, and all those together a
// share (LinkLookup reads the records through the node's DHT, cached and
// bounded). Nothing else lives here: the
// DHT, the republisher and the host belong to the node, the protocol to
// shardproto.
//
// NodeConfig fills a node.Config with every account record kind
// (account.RecordKinds; the client package does the same, so login,
// account and head records are accepted network-wide) and the shard
// protocol's resource limits, which the node package does not know.
//
// Fleet, TestnetOptions and StartTestnet start in-process networks
// (p2pnode/localnet) of full providers for tests and for `jellyfish
// testnet`; their providers admit all unless a test sets
// Config.Admission.
package provider
