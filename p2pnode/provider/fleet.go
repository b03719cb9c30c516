package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
)

// DefaultTestQuota is the quota of every provider of a test network unless
// TestnetConfig says otherwise: small, so quota tests fill it quickly.
const DefaultTestQuota = 64 << 20

// TestnetConfig tunes the providers of an in-process network (package
// localnet), as `jellyfish testnet` and tests run it.
type TestnetConfig struct {
	// Base holds the network options (logger, clock, intervals). Its
	// Configure and OnStart hooks, if set, run after the provider's own.
	Base localnet.Options
	// QuotaBytes is every provider's quota; zero means DefaultTestQuota.
	QuotaBytes int64
	// Tier is the tier every node record names; tests keep 0.
	Tier int
	// Provider, if set, may change node i's provider config before it is
	// attached. Providers of a test network admit every account up to
	// their quota (Config.Admission.AdmitAll: on a local network every
	// provider is the user's own); a test of the admission policy sets
	// Admission here.
	Provider func(i int, cfg *Config)
}

// Fleet tracks the providers of an in-process network across restarts:
// its Options start a provider on every node, and Provider(i) returns the
// one of the current incarnation of node i. Its methods are safe for
// concurrent use.
type Fleet struct {
	cfg TestnetConfig

	mu    sync.Mutex
	provs map[int]*Provider
	dirs  map[int]string // node data dirs, learnt in Configure
}

// NewFleet returns a Fleet for cfg; pass Fleet.Options to localnet.Start
// (or, in tests, testnet.New).
func NewFleet(cfg TestnetConfig) *Fleet {
	if cfg.QuotaBytes <= 0 {
		cfg.QuotaBytes = DefaultTestQuota
	}
	return &Fleet{cfg: cfg, provs: map[int]*Provider{}, dirs: map[int]string{}}
}

// Options returns network options that register every Jellyfish record
// kind on each node and attach a provider to it after every start.
func (f *Fleet) Options() localnet.Options {
	opts := f.cfg.Base
	baseConfigure, baseOnStart := opts.Configure, opts.OnStart
	opts.Configure = func(i int, cfg *node.Config) {
		*cfg = NodeConfig(*cfg)
		if baseConfigure != nil {
			baseConfigure(i, cfg)
		}
		f.mu.Lock()
		f.dirs[i] = cfg.DataDir
		f.mu.Unlock()
	}
	opts.OnStart = func(ctx context.Context, i int, n *node.Node) error {
		pcfg := Config{DataDir: f.dataDir(i), Tier: f.cfg.Tier, QuotaBytes: f.cfg.QuotaBytes, Admission: AdmissionConfig{AdmitAll: true}}
		if f.cfg.Provider != nil {
			f.cfg.Provider(i, &pcfg)
		}
		p, err := Attach(ctx, n, pcfg)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.provs[i] = p
		f.mu.Unlock()
		if baseOnStart != nil {
			return baseOnStart(ctx, i, n)
		}
		return nil
	}
	return opts
}

// dataDir returns node i's data dir. The network does not expose it on
// the node, so the fleet records it in Configure.
func (f *Fleet) dataDir(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirs[i]
}

// Provider returns the provider of node i's current incarnation, or nil
// before node i first started.
func (f *Fleet) Provider(i int) *Provider {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.provs[i]
}

// PublishAll publishes the node record of every live provider of nw now,
// in parallel: records become readable without waiting for the loops'
// retries (the first nodes of a network start with nobody to put to).
func (f *Fleet) PublishAll(ctx context.Context, nw *localnet.Network) error {
	var g errgroup.Group
	g.SetLimit(8)
	for _, i := range nw.Live() {
		p := f.Provider(i)
		if p == nil || p.Node() != nw.Node(i) {
			return fmt.Errorf("provider: node %d has no provider", i)
		}
		g.Go(func() error {
			if err := p.Publish(ctx); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// TestnetOptions returns network options that make every node a full
// provider with cfg's quota: the one-call way to get a provider network,
// testnet.New(t, n, provider.TestnetOptions(cfg)). Use a Fleet to reach
// the providers themselves.
func TestnetOptions(cfg TestnetConfig) localnet.Options {
	return NewFleet(cfg).Options()
}

// StartTestnet starts an n-node provider network in dir (see
// localnet.Start) and publishes every node record before returning, so a
// caller can read them at once. On error nothing is left running.
func StartTestnet(ctx context.Context, dir string, n int, cfg TestnetConfig) (*localnet.Network, *Fleet, error) {
	f := NewFleet(cfg)
	nw, err := localnet.Start(ctx, dir, n, f.Options())
	if err != nil {
		return nil, nil, err
	}
	if n > 1 {
		if err := f.PublishAll(ctx, nw); err != nil {
			return nil, nil, errors.Join(err, nw.Close())
		}
	}
	return nw, f, nil
}
