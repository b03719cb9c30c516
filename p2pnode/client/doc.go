// Package client is a pure Jellyfish client process: a node in DHT client
// mode (it queries the network but stores nobody's records), an
// account.Records adapter over it, shard protocol clients, and discovery of
// the providers it can place shards on.
//
// The rclone backend and the `jellyfish account` commands use it:
//
//	c, err := client.New(ctx, client.Config{DataDir: dir, Bootstrap: addrs})
//	defer c.Close()
//	m := account.NewManager(c.Records())
//	a, err := m.Login(ctx, user, password)
//	sc, err := c.Shards(a.Identity)          // signs puts as the account
//	provs, err := c.Providers(ctx)           // where shards can go
//	receipt, err := sc.Put(ctx, provs[0].ID, id, data, lease)
//
// NodeRecords adapts any node (a provider too) to account.Records.
package client
