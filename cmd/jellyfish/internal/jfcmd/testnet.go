package jfcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// BootstrapFileName is the file `jellyfish testnet` writes in its folder:
// one full loopback multiaddr (with /p2p/<ID>) per node, one per line.
const BootstrapFileName = "bootstrap.txt"

// TestnetReady describes a running `jellyfish testnet`, for the hooks in
// testnetReadyHooks.
type TestnetReady struct {
	// Dir is the testnet's folder (--dir).
	Dir string
	// Bootstrap holds one loopback multiaddr per node, as written to
	// BootstrapFile.
	Bootstrap     []ma.Multiaddr
	BootstrapFile string
	// Username and Password are set when --account created an account.
	Username account.Username
	Password string
	// InsecureTestKDF says the account was made with the test KDF.
	InsecureTestKDF bool
	// ConfigFile is the rclone config a hook wrote, if any.
	ConfigFile string
	// Out is where the command prints its summary.
	Out io.Writer
	// Network is the running network.
	Network *localnet.Network
	// Fleet reaches the nodes' providers.
	Fleet *provider.Fleet
	// BenchRaw and BenchStats are the hidden --bench-raw and --bench-stats
	// flags.
	BenchRaw, BenchStats bool
}

// testnetReadyHooks run once the testnet is up and bootstrap.txt is
// written, before the summary is printed; an error stops the testnet.
// The backend adds writing Dir/rclone.conf here (from another file of this
// package, in its init), so `jellyfish testnet --account alice` is the
// whole demo setup. Nothing else writes rclone.conf.
var testnetReadyHooks []func(ctx context.Context, r *TestnetReady) error

type testnetOptions struct {
	nodes      int
	dir        string
	quotaMiB   int64
	account    string
	testKDF    bool
	benchRaw   bool
	benchStats bool
	log        logFlags
}

func init() {
	var o testnetOptions
	c := &cobra.Command{
		Use:   "testnet",
		Short: "Run an in-process Jellyfish network of N provider nodes on 127.0.0.1",
		Long: `testnet starts N full provider nodes in this process, on loopback addresses,
writes DIR/bootstrap.txt (one node address per line, for --bootstrap-file) and
runs until interrupted (SIGINT or SIGTERM).

With --account USER and the password in JELLYFISH_PASSWORD, it also creates
that account on the new network.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(context.Background())
			defer stop()
			return runTestnet(ctx, cmd, o)
		}),
	}
	c.Flags().IntVar(&o.nodes, "nodes", 4, "number of provider nodes")
	c.Flags().StringVar(&o.dir, "dir", "jellyfish-testnet", "folder for the nodes' data and bootstrap.txt")
	c.Flags().Int64Var(&o.quotaMiB, "quota-mib", 1024, "shared space of each node in MiB")
	c.Flags().StringVar(&o.account, "account", "", "create this account on the network (password from JELLYFISH_PASSWORD)")
	addInsecureKDFFlag(c, &o.testKDF)
	addBenchRawFlag(c, &o.benchRaw)
	addBenchStatsFlag(c, &o.benchStats)
	o.log.register(c)
	c.Flags().Lookup("log-level").DefValue = "warn"
	_ = c.Flags().Set("log-level", "warn")
	commands = append(commands, c)
}

func runTestnet(ctx context.Context, cmd *cobra.Command, o testnetOptions) (err error) {
	nw, ready, err := startTestnet(ctx, cmd, o)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	defer func() {
		fmt.Fprintln(out, "stopping the testnet")
		if cerr := nw.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close testnet: %w", cerr))
		}
	}()
	fmt.Fprintf(out, "jellyfish testnet: %d provider nodes on 127.0.0.1, %d MiB shared each\n", o.nodes, o.quotaMiB)
	for i, a := range ready.Bootstrap {
		fmt.Fprintf(out, "  node %d  %s\n", i, a)
	}
	fmt.Fprintf(out, "bootstrap file: %s\n", ready.BootstrapFile)
	if ready.Username != "" {
		fmt.Fprintf(out, "account %q created\n", ready.Username)
	}
	if ready.ConfigFile != "" {
		fmt.Fprintf(out, "rclone config: %s (remote \"jellyfish:\"), e.g.\n  jellyfish --config %s lsd jellyfish:\n", ready.ConfigFile, ready.ConfigFile)
	}
	fmt.Fprintln(out, "running; press Ctrl-C to stop")
	<-ctx.Done()
	return nil
}

// startTestnet starts the network of o, writes bootstrap.txt, creates the
// account if asked and runs the ready hooks. On error nothing is left
// running; otherwise the caller closes the network.
func startTestnet(ctx context.Context, cmd *cobra.Command, o testnetOptions) (_ *localnet.Network, _ *TestnetReady, err error) {
	if o.nodes < 1 || o.nodes > 200 {
		return nil, nil, fmt.Errorf("--nodes %d: want 1 to 200", o.nodes)
	}
	if o.quotaMiB <= 0 {
		return nil, nil, fmt.Errorf("--quota-mib %d: must be positive", o.quotaMiB)
	}
	log, err := o.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	var (
		user     account.Username
		password string
	)
	if o.account != "" {
		if user, err = account.NormalizeUsername(o.account); err != nil {
			return nil, nil, err
		}
		if password = os.Getenv(envPassword); password == "" {
			return nil, nil, fmt.Errorf("--account needs the password in %s", envPassword)
		}
		if err := account.CheckPassword(user, password); err != nil {
			return nil, nil, err
		}
	}
	dir, err := expandHome(o.dir)
	if err != nil {
		return nil, nil, err
	}
	out := cmd.OutOrStdout()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(o.nodes)*time.Second)
	defer cancel()
	nw, fleet, err := provider.StartTestnet(startCtx, dir, o.nodes, provider.TestnetConfig{
		Base:       localnet.Options{Logger: log},
		QuotaBytes: o.quotaMiB << 20,
	})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, nw.Close())
		}
	}()
	ready := &TestnetReady{Dir: dir, BootstrapFile: filepath.Join(dir, BootstrapFileName),
		Username: user, Password: password, InsecureTestKDF: o.testKDF, Out: out,
		Network: nw, Fleet: fleet, BenchRaw: o.benchRaw, BenchStats: o.benchStats}
	for i := range o.nodes {
		a, err := loopbackAddr(nw.Node(i).Addrs())
		if err != nil {
			return nil, nil, fmt.Errorf("node %d: %w", i, err)
		}
		ready.Bootstrap = append(ready.Bootstrap, a)
	}
	if err := writeBootstrapFile(ready.BootstrapFile, ready.Bootstrap); err != nil {
		return nil, nil, err
	}
	if user != "" {
		if err := createTestnetAccount(startCtx, dir, ready, o.testKDF); err != nil {
			return nil, nil, err
		}
	}
	for _, h := range testnetReadyHooks {
		if err := h(ctx, ready); err != nil {
			return nil, nil, err
		}
	}
	return nw, ready, nil
}

// createTestnetAccount creates the --account user through a client node of
// the new network.
func createTestnetAccount(ctx context.Context, dir string, r *TestnetReady, testKDF bool) error {
	cdir, err := os.MkdirTemp(dir, "client-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cdir)
	c, err := client.New(ctx, client.Config{DataDir: cdir, Bootstrap: r.Bootstrap})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := account.NewManager(c.Records(), managerOptions(testKDF)...).Create(ctx, r.Username, r.Password); err != nil {
		return fmt.Errorf("create account %q: %w", r.Username, err)
	}
	return nil
}

// loopbackAddr picks a node's loopback TCP address, or any loopback one.
func loopbackAddr(addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	var fallback ma.Multiaddr
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return a, nil
		}
		if fallback == nil {
			fallback = a
		}
	}
	if fallback == nil {
		return nil, errors.New("no loopback address")
	}
	return fallback, nil
}

// writeBootstrapFile writes one address per line, atomically.
func writeBootstrapFile(path string, addrs []ma.Multiaddr) error {
	var b strings.Builder
	for _, a := range addrs {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bootstrap file: %w", err)
	}
	return nil
}
