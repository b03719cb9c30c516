package jfcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
)

// statusOptions are the flags of `jellyfish status`.
type statusOptions struct {
	json      bool
	localNode string
	timeout   time.Duration
}

func init() { commands = append(commands, newStatusCommand()) }

func newStatusCommand() *cobra.Command {
	o := statusOptions{localNode: "http://" + defaultStatusAddr + "/status.json", timeout: 3 * time.Minute}
	c := &cobra.Command{
		Use:   "status [REMOTE:]",
		Short: "Show what the account may store, its nodes and how the network sees them",
		Long: `Opens REMOTE (a jellyfish remote of the rclone config; without it, the
only one there is) and shows:

- the account's allowance as the network grants it today: what the
  providers would still take from it under their admission rule (the
  numbers rclone about and df show: used, free and total, in shard bytes),
  and its class at the providers (own, sharing or starter) with what would
  change it;
- each node the account record lists: whether it is linked both ways (its
  node record names the account), what its record's addresses say (public;
  relayed: behind a NAT; local only; none) and how this device connects to it
  now (directly, through a relay and a hole punch, or through a relay
  only, which carries no shards);
- the account's lifetime (when its records expire, the last maintenance)
  and repair queue, as ` + "`jellyfish backend status`" + ` does;
- the node running on this machine, if its status page answers at
  --local-node.

Each provider measures the account's linked nodes itself (probes at random
times, audits of a test shard it keeps there) and admits the account by what
they earned as it saw it; status asks every provider (shard request 10) and
shows the class most of them give, the earned allowance (median) and, per
node, the uptime, audits and standing they measured (medians and counts).
--json prints the same as JSON.`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			remote := ""
			if len(args) == 1 {
				remote = args[0]
			}
			return runStatus(ctx, cmd.OutOrStdout(), o, remote)
		}),
	}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON")
	c.Flags().StringVar(&o.localNode, "local-node", o.localNode, "status.json of a node on this machine to show too (\"\" for none)")
	c.Flags().DurationVar(&o.timeout, "timeout", o.timeout, "give up after this long")
	return c
}

// statusReport is the JSON of `jellyfish status --json`.
type statusReport struct {
	Remote string               `json:"remote"`
	Status *jellyfish.Status    `json:"status"`
	Local  *nodestatus.Snapshot `json:"local_node,omitempty"`
	// LocalError says why the local node's status was not read, when
	// one was asked for.
	LocalError string `json:"local_node_error,omitempty"`
}

func runStatus(ctx context.Context, out io.Writer, o statusOptions, remote string) error {
	if remote == "" {
		var err error
		if remote, err = onlyJellyfishRemote(); err != nil {
			return err
		}
	}
	f, err := fs.NewFs(ctx, remote)
	if err != nil {
		return err
	}
	jf, ok := f.(*jellyfish.Fs)
	if !ok {
		return fmt.Errorf("%s is not a jellyfish remote", remote)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := jf.CloseSession(cctx); err != nil {
			fs.Errorf(nil, "closing the session: %v", err)
		}
	}()
	rep, err := statusOf(ctx, jf, remote, o.localNode)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeStatus(out, rep)
	return nil
}

// statusOf gathers the report of remote, open as jf, and of the node whose
// status.json is at localNode ("": none).
func statusOf(ctx context.Context, jf *jellyfish.Fs, remote, localNode string) (statusReport, error) {
	st, err := jf.Status(ctx)
	if err != nil {
		return statusReport{}, err
	}
	rep := statusReport{Remote: remote, Status: st}
	if localNode != "" {
		if rep.Local, err = readLocalNode(ctx, localNode); err != nil {
			rep.LocalError = err.Error()
		}
	}
	return rep, nil
}

// onlyJellyfishRemote returns "NAME:" of the only remote of type jellyfish
// in the rclone config.
func onlyJellyfishRemote() (string, error) {
	var names []string
	for _, s := range config.FileSections() {
		if t, _ := config.FileGetValue(s, "type"); t == "jellyfish" {
			names = append(names, s)
		}
	}
	switch len(names) {
	case 0:
		return "", errors.New("no jellyfish remote in the rclone config: give REMOTE: or --config")
	case 1:
		return names[0] + ":", nil
	}
	sort.Strings(names)
	return "", fmt.Errorf("several jellyfish remotes in the rclone config (%s): give one", strings.Join(names, ", "))
}

// readLocalNode reads a node's status.json; the node must answer within
// 2 seconds.
func readLocalNode(ctx context.Context, url string) (*nodestatus.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no node answers at %s", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var snap nodestatus.Snapshot
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&snap); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &snap, nil
}

// writeStatus prints rep for people.
func writeStatus(w io.Writer, rep statusReport) {
	st := rep.Status
	a := st.Allowance
	fmt.Fprintf(w, "account %s (remote %s)\n", st.Account, rep.Remote)
	fmt.Fprintln(w, "\nallowance (the providers' admission rule, in shard bytes; what `rclone about` shows)")
	fmt.Fprintf(w, "  used:  %s in %d files\n", sizeOf(a.Used), a.Files)
	if a.Known {
		fmt.Fprintf(w, "  free:  %s\n", sizeOf(a.Free))
		fmt.Fprintf(w, "  total: %s\n", sizeOf(a.Total))
		if a.From == "providers" {
			fmt.Fprintf(w, "  from %d of %d providers asked, holding %s of this account; in %d+%d segments that is %s of files\n",
				a.Answered, a.Asked, sizeOf(a.Held), a.DataShards, a.ParityShards, sizeOf(fileBytes(a.Free, a.DataShards, a.ParityShards)))
		} else {
			fmt.Fprintf(w, "  from the space the account's own nodes offer (no provider answered)\n")
		}
	} else {
		fmt.Fprintln(w, "  free:  unknown (no provider answered)")
	}
	fmt.Fprintf(w, "  earned allowance (karma): %s\n", st.Earned)
	fmt.Fprintf(w, "\nclass at providers: %s\n", st.Class.Class)
	fmt.Fprintln(w, "  (at those that enforce the admission rule; one run with --admit-all takes any account up to its quota)")
	if len(st.Class.Own) > 0 {
		fmt.Fprintf(w, "  own at its nodes %s: there it is limited by their quota only\n", shortIDs(st.Class.Own))
	}
	if st.Class.AtProviders != "" {
		fmt.Fprintf(w, "  as the providers say: %s\n", st.Class.AtProviders)
	}
	fmt.Fprintf(w, "  why: %s\n", st.Class.Why)
	fmt.Fprintf(w, "  to change it: %s\n", st.Class.Change)

	fmt.Fprintf(w, "\nnodes in the account record: %d\n", len(st.Nodes))
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "  node %s\n", n.ID)
		switch {
		case !n.Record:
			fmt.Fprintf(w, "    linked:       no: no node record found (%s)\n", n.RecordError)
		case n.Linked:
			fmt.Fprintln(w, "    linked:       yes, both ways (its node record names this account)")
		case n.Owner == "":
			fmt.Fprintln(w, "    linked:       no: its node record names no account")
		default:
			fmt.Fprintf(w, "    linked:       no: its node record names another account (%s)\n", n.Owner)
		}
		if n.Record {
			fmt.Fprintf(w, "    offers:       %d GiB\n", n.OfferedGiB)
			what := map[string]string{
				"public":       "public: anyone can dial it",
				"relayed":      "relayed: behind a NAT, reached from outside its network through a relay",
				"local only":   "local only: private or loopback addresses, dialable from its own network only",
				"no addresses": "none in its node record",
			}[n.Reachability]
			if what == "" {
				what = n.Reachability
			}
			fmt.Fprintf(w, "    addresses:    %s (%d, %d through a relay)\n", what, len(n.Addrs), n.RelayedAddrs)
		}
		switch n.Connection {
		case "direct":
			fmt.Fprintln(w, "    reachable:    yes, directly")
		case "hole-punched":
			fmt.Fprintln(w, "    reachable:    yes, through a relay and then directly after a hole punch")
		case "relayed":
			fmt.Fprintln(w, "    reachable:    only through a relay (no hole punch from here): shards cannot go to it from this device")
		case "failed":
			fmt.Fprintf(w, "    reachable:    no (%s)\n", n.ConnectError)
		default:
			fmt.Fprintln(w, "    reachable:    not tried")
		}
		if n.Connection != "failed" && n.Connection != "not tried" {
			fmt.Fprintf(w, "    shards:       %s\n", map[bool]string{true: "served (it speaks the shard protocol)", false: "not served (its identify lists no shard protocol)"}[n.Shards])
		}
		fmt.Fprintf(w, "    uptime:       %s\n", n.Uptime)
		fmt.Fprintf(w, "    audits:       %s\n", n.Audits)
		fmt.Fprintf(w, "    standing:     %s\n", n.Standing)
		if n.Credit != "" {
			fmt.Fprintf(w, "    credited:     %s\n", n.Credit)
		}
	}

	fmt.Fprintln(w, "\nlifetime")
	keys := make([]string, 0, len(st.Lifetime))
	for k := range st.Lifetime {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %v\n", strings.ReplaceAll(k, "_", " "), st.Lifetime[k])
	}
	fmt.Fprintf(w, "repair queue: %d segments, %d shards\n", st.RepairQueue["segments"], st.RepairQueue["shards"])
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}

	switch {
	case rep.Local != nil:
		l := rep.Local
		fmt.Fprintf(w, "\nnode on this machine (its status page)\n")
		fmt.Fprintf(w, "  id:           %s\n", l.Node.ID)
		fmt.Fprintf(w, "  account:      %s\n", l.Node.Account)
		fmt.Fprintf(w, "  running for:  %s\n", (time.Duration(l.Node.UptimeSeconds) * time.Second).String())
		fmt.Fprintf(w, "  reachability: %s (AutoNAT); %d relayed addresses\n", l.Network.Reachability, l.Network.RelayAddrs)
		fmt.Fprintf(w, "  storage:      %s of %s used, %d shards for %d accounts\n", sizeOf(l.Storage.UsedBytes), sizeOf(l.Storage.QuotaBytes), l.Storage.Shards, l.Storage.Owners)
		fmt.Fprintf(w, "  audits:       %d answered (as the node counts them)\n", l.Service.AuditsAnswered)
	case rep.LocalError != "":
		fmt.Fprintf(w, "\nnode on this machine: none (%s)\n", rep.LocalError)
	}
}

// fileBytes is the file bytes that shard bytes hold in k+m segments.
func fileBytes(shard int64, k, m int) int64 {
	if k+m <= 0 {
		return 0
	}
	return shard / int64(k+m) * int64(k)
}

func sizeOf(n int64) string {
	return fmt.Sprintf("%s (%d bytes)", fs.SizeSuffix(n).ByteUnit(), n)
}

func shortIDs(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if len(id) > 12 {
			id = "…" + id[len(id)-8:]
		}
		out[i] = id
	}
	return strings.Join(out, ", ")
}
