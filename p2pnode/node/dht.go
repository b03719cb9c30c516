package node

import (
	"fmt"
	"slices"
	"time"

	ds "github.com/ipfs/go-datastore"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	librecord "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// DHTConfig is what NewDHT needs.
type DHTConfig struct {
	Mode Mode
	// Validator validates the "jf" namespace, the only one the DHT accepts.
	Validator *record.Validator
	// Store keeps the records; NewDHT does not close it.
	Store ds.Batching
	// MaxRecordAge is how long a record is kept after it was last received.
	MaxRecordAge time.Duration
	// BootstrapPeers are handed to kad-dht for refilling an empty routing
	// table; nil means none (never the public IPFS bootstrap list).
	BootstrapPeers []peer.AddrInfo
	// Extra options are applied last.
	Extra []dht.Option
}

// NewDHT starts a Kademlia DHT on h for Jellyfish records: protocol prefix
// ProtocolPrefix, only the "jf" namespace (no /pk or /ipns), provider
// records disabled, records stored in cfg.Store. The caller must Close the
// DHT before closing h and the store.
func NewDHT(h host.Host, cfg DHTConfig) (*dht.IpfsDHT, error) {
	if cfg.Validator == nil || cfg.Store == nil {
		return nil, fmt.Errorf("%w: DHT needs a validator and a store", ErrConfig)
	}
	mode := dht.ModeServer
	switch cfg.Mode {
	case ModeClient:
		mode = dht.ModeClient
	case ModeAuto:
		// kad-dht follows the host's reachability events: server when
		// public or unknown, client when private.
		mode = dht.ModeAutoServer
	}
	opts := []dht.Option{
		dht.ProtocolPrefix(ProtocolPrefix),
		dht.Mode(mode),
		// dht.Validator (not NamespacedValidator) marks the validator as
		// replaced, so kad-dht does not add its /pk and /ipns defaults.
		dht.Validator(librecord.NamespacedValidator{record.Namespace: cfg.Validator}),
		dht.Datastore(cfg.Store),
		dht.MaxRecordAge(cfg.MaxRecordAge),
		dht.DisableProviders(),
	}
	if len(cfg.BootstrapPeers) > 0 {
		opts = append(opts, dht.BootstrapPeers(cfg.BootstrapPeers...))
	}
	opts = append(opts, cfg.Extra...)
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("node: start DHT: %w", err)
	}
	return d, nil
}

// DHTProtocol is the protocol of the node's DHT.
const DHTProtocol = ProtocolPrefix + "/kad/1.0.0"

// ServesDHT reports whether the node serves the DHT now: in ModeAuto that
// changes with what AutoNAT concludes. A serving node handles DHTProtocol
// (kad-dht registers the handler only while it is a server).
func (n *Node) ServesDHT() bool {
	return slices.Contains(n.host.Mux().Protocols(), DHTProtocol)
}
