package jfcmd

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/sim"
	"github.com/jellyfish-p2p/jellyfish/karma"
)

// simCommand is `jellyfish sim`; its subcommands add themselves in init.
var simCommand = &cobra.Command{
	Use:   "sim",
	Short: "Model how likely files are to be readable and to last, exactly and by Monte-Carlo",
	Long: `sim computes, for Jellyfish's erasure coding (any k of k+m shards rebuild a
segment) and the backend's own shard placement, the probability of reading a
file when nodes are online only part of the time (availability), and of
keeping it for a year when nodes leave for good (durability). Each point has
an exact value and a Monte-Carlo estimate with its standard error; results are
written as CSV and PNG. "sim network" measures the same on a real in-process
network. The model is described in docs/availability.md.`,
}

func init() {
	commands = append(commands, simCommand)
	simCommand.AddCommand(availabilityCommand(), durabilityCommand(), allowanceCommand(), karmaCommand())
}

type availabilityOptions struct {
	k, m       int
	uptime     float64
	nodes      string
	codes      string
	codesNodes int
	policies   string
	trials     int
	seed       uint64
	out        string
	figures    string
	configs    string
	uptimes    string
}

func availabilityCommand() *cobra.Command {
	o := availabilityOptions{k: 10, m: 20, uptime: 0.66, nodes: "1-100", codes: "0-40", codesNodes: 100,
		policies: "backend,random", trials: 20000, seed: 1, out: ".", figures: "nodes,codes,configs",
		configs: "3-of-10,10-of-30,29-of-80,4-of-10,10-of-20,10-of-40,20-of-40,64-of-96", uptimes: "0.66,0.8"}
	c := &cobra.Command{
		Use:   "availability",
		Short: "P(a segment can be read) vs number of nodes and vs number of parity shards",
		Long: `availability writes, in --out:

  availability-nodes.csv/.png    P(recover) vs number of nodes (--nodes), k+m fixed
  availability-codes.csv/.png    P(recover) vs parity shards m (--codes), on --codes-nodes nodes
  availability-configs.csv       nines of availability of k-of-n schemes (--configs)
                                 at each of --uptimes, one shard per node

Every node is online with probability --uptime, independently. The
"backend" policy places shards with the backend's own placement (several per
node when there are fewer nodes than shards; exact value by a dynamic program
over nodes, a binomial tail otherwise); "random" puts each shard on a node
drawn uniformly. Monte-Carlo uses --trials draws per point from --seed.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return runAvailability(cmd.OutOrStdout(), o) }),
	}
	f := c.Flags()
	f.IntVar(&o.k, "k", o.k, "data shards per segment")
	f.IntVar(&o.m, "m", o.m, "parity shards per segment (figure 1 and the node-count axis)")
	f.Float64Var(&o.uptime, "uptime", o.uptime, "probability that a node is online")
	f.StringVar(&o.nodes, "nodes", o.nodes, "node counts for figure 1, e.g. 1-100 or 1-30,40-100:10")
	f.StringVar(&o.codes, "codes", o.codes, "parity shard counts m for figure 2")
	f.IntVar(&o.codesNodes, "codes-nodes", o.codesNodes, "number of nodes in figure 2")
	f.StringVar(&o.policies, "policy", o.policies, "placement policies to plot: backend, random or both")
	f.IntVar(&o.trials, "trials", o.trials, "Monte-Carlo trials per point")
	f.Uint64Var(&o.seed, "seed", o.seed, "Monte-Carlo seed")
	f.StringVar(&o.out, "out", o.out, "folder for the CSV and PNG files")
	f.StringVar(&o.figures, "figures", o.figures, "which outputs: nodes, codes, configs")
	f.StringVar(&o.configs, "configs", o.configs, "k-of-n schemes for the nines table")
	f.StringVar(&o.uptimes, "uptimes", o.uptimes, "uptimes for the nines table")
	return c
}

func runAvailability(out io.Writer, o availabilityOptions) error {
	var policies []sim.Policy
	for _, p := range strings.Split(o.policies, ",") {
		pol, err := sim.ParsePolicy(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		policies = append(policies, pol)
	}
	if o.trials < 1 {
		return fmt.Errorf("--trials %d: want at least 1", o.trials)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	figures := strings.Split(o.figures, ",")
	rng := rand.New(rand.NewPCG(o.seed, 0x6a656c6c79))
	type axis struct {
		name, varied, title, xlabel string
		xs                          []int
		setup                       func(x int, p sim.Policy) sim.Setup
	}
	var axes []axis
	if slices.Contains(figures, "nodes") {
		xs, err := sim.ParseInts(o.nodes)
		if err != nil {
			return fmt.Errorf("--nodes: %w", err)
		}
		axes = append(axes, axis{"availability-nodes", "nodes",
			fmt.Sprintf("Recovering a segment: k=%d, m=%d, uptime %.0f%%", o.k, o.m, 100*o.uptime), "number of nodes", xs,
			func(x int, p sim.Policy) sim.Setup {
				return sim.Setup{K: o.k, M: o.m, Uptime: o.uptime, Nodes: x, Policy: p}
			}})
	}
	if slices.Contains(figures, "codes") {
		xs, err := sim.ParseInts(o.codes)
		if err != nil {
			return fmt.Errorf("--codes: %w", err)
		}
		axes = append(axes, axis{"availability-codes", "m",
			fmt.Sprintf("Recovering a segment: k=%d, %d nodes, uptime %.0f%%", o.k, o.codesNodes, 100*o.uptime), "parity shards m", xs,
			func(x int, p sim.Policy) sim.Setup {
				return sim.Setup{K: o.k, M: x, Uptime: o.uptime, Nodes: o.codesNodes, Policy: p}
			}})
	}
	for _, a := range axes {
		var rows []sim.AvailabilityRow
		fig := sim.Figure{Title: a.title, XLabel: a.xlabel, YLabel: "P(segment can be read)",
			FailLabel: "P(segment cannot be read), log", YMin: 0, YMax: 1.02}
		for _, p := range policies {
			s := sim.Series{Name: string(p) + " placement"}
			for _, x := range a.xs {
				setup := a.setup(x, p)
				if err := setup.Validate(); err != nil {
					return fmt.Errorf("%s=%d: %w", a.varied, x, err)
				}
				exact, fail := setup.Exact()
				est := setup.MonteCarlo(o.trials, rng)
				rows = append(rows, sim.AvailabilityRow{Varied: a.varied, Value: float64(x), Setup: setup, Exact: exact, MC: est})
				s.X = append(s.X, float64(x))
				s.Exact = append(s.Exact, exact)
				s.Fail = append(s.Fail, fail)
				s.MC = append(s.MC, est)
			}
			fig.Series = append(fig.Series, s)
		}
		if err := writeCSV(filepath.Join(o.out, a.name+".csv"), func(w io.Writer) error { return sim.WriteAvailabilityCSV(w, rows) }); err != nil {
			return err
		}
		if err := fig.SavePNG(filepath.Join(o.out, a.name+".png")); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %d points written to %s.csv and .png\n", a.name, len(rows), filepath.Join(o.out, a.name))
		printAvailabilitySample(out, rows)
	}
	if slices.Contains(figures, "configs") {
		return availabilityConfigs(out, o)
	}
	return nil
}

// printAvailabilitySample prints a handful of rows, to see the figure's
// shape without opening it.
func printAvailabilitySample(out io.Writer, rows []sim.AvailabilityRow) {
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tvaried\tvalue\texact\tMonte-Carlo\tstderr\t")
	step := max(1, len(rows)/12)
	for i, r := range rows {
		if i%step == 0 || i == len(rows)-1 {
			fmt.Fprintf(tw, "%s\t%s\t%g\t%.6f\t%.6f\t%.6f\t\n", r.Setup.Policy, r.Varied, r.Value, r.Exact, r.MC.P, r.MC.StdErr)
		}
	}
	tw.Flush()
}

// availabilityConfigs writes the nines of each k-of-n scheme at each
// uptime, one shard per node.
func availabilityConfigs(out io.Writer, o availabilityOptions) error {
	configs, err := sim.ParseConfigs(o.configs)
	if err != nil {
		return fmt.Errorf("--configs: %w", err)
	}
	uptimes, err := sim.ParseFloats(o.uptimes)
	if err != nil {
		return fmt.Errorf("--uptimes: %w", err)
	}
	var b strings.Builder
	b.WriteString("k,n,expansion,uptime,p_recover,p_fail,nines\n")
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scheme\texpansion\t")
	for _, u := range uptimes {
		fmt.Fprintf(tw, "P(fail) at %.0f%%\tnines\t", 100*u)
	}
	fmt.Fprintln(tw)
	for _, c := range configs {
		fmt.Fprintf(tw, "%d-of-%d\t%.2f\t", c.K, c.N, float64(c.N)/float64(c.K))
		for _, u := range uptimes {
			s := sim.Setup{K: c.K, M: c.N - c.K, Uptime: u, Nodes: c.N, Policy: sim.Backend}
			if err := s.Validate(); err != nil {
				return err
			}
			r, f := s.Exact()
			fmt.Fprintf(&b, "%d,%d,%g,%g,%.10g,%.6g,%.2f\n", c.K, c.N, float64(c.N)/float64(c.K), u, r, f, sim.Nines(f))
			fmt.Fprintf(tw, "%.3g\t%.1f\t", f, sim.Nines(f))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	path := filepath.Join(o.out, "availability-configs.csv")
	fmt.Fprintf(out, "written to %s\n", path)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

type durabilityOptions struct {
	k, m      int
	uptime    float64
	churn     string
	audits    string
	threshold int
	horizon   float64
	trials    int
	seed      uint64
	out       string
}

func durabilityCommand() *cobra.Command {
	o := durabilityOptions{k: 10, m: 20, uptime: 0.66, churn: "0-0.6:0.025", audits: "1,7,30,0", threshold: -1,
		horizon: sim.DaysPerYear, trials: 5000, seed: 1, out: "."}
	c := &cobra.Command{
		Use:   "durability",
		Short: "P(a segment survives a year) vs monthly node churn, with audits and repair",
		Long: `durability writes durability.csv and durability.png in --out: the
probability that a segment is still recoverable after --horizon-days, against
the fraction of nodes that leave the network for good each month (--churn),
one curve per audit interval (--audit-days; 0 means never repair).

Model: the k+m shards start on distinct nodes; each node leaves after an
exponential time (--churn of them within a month). Every audit, each shard on
a node that has not left answers with probability --uptime; if between k and
--threshold answer, the segment is rebuilt and every silent shard is put on a
fresh node. The segment is lost once fewer than k shards remain on nodes that
have not left. The exact value is a Markov chain on that number; Monte-Carlo
simulates every node (--trials per point, from --seed).`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return runDurability(cmd.OutOrStdout(), o) }),
	}
	f := c.Flags()
	f.IntVar(&o.k, "k", o.k, "data shards per segment")
	f.IntVar(&o.m, "m", o.m, "parity shards per segment")
	f.Float64Var(&o.uptime, "uptime", o.uptime, "probability that a node answers an audit")
	f.StringVar(&o.churn, "churn", o.churn, "monthly fractions of nodes leaving for good, e.g. 0-0.6:0.025")
	f.StringVar(&o.audits, "audit-days", o.audits, "audit/repair intervals in days, one curve each (0: no repair)")
	f.IntVar(&o.threshold, "threshold", o.threshold, "repair when at most this many shards answer (-1: k + m/4 rounded up)")
	f.Float64Var(&o.horizon, "horizon-days", o.horizon, "how long the segment must last")
	f.IntVar(&o.trials, "trials", o.trials, "Monte-Carlo trials per point")
	f.Uint64Var(&o.seed, "seed", o.seed, "Monte-Carlo seed")
	f.StringVar(&o.out, "out", o.out, "folder for the CSV and PNG files")
	return c
}

func runDurability(out io.Writer, o durabilityOptions) error {
	churns, err := sim.ParseFloats(o.churn)
	if err != nil {
		return fmt.Errorf("--churn: %w", err)
	}
	audits, err := sim.ParseFloats(o.audits)
	if err != nil {
		return fmt.Errorf("--audit-days: %w", err)
	}
	if o.threshold < 0 {
		o.threshold = o.k + (o.m+3)/4
	}
	if o.trials < 1 {
		return fmt.Errorf("--trials %d: want at least 1", o.trials)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.seed, 0x647572))
	fig := sim.Figure{
		Title: fmt.Sprintf("Surviving %g days: k=%d, m=%d, uptime %.0f%%, repair at ≤%d answers",
			o.horizon, o.k, o.m, 100*o.uptime, o.threshold),
		XLabel: "nodes leaving for good per month (fraction)", YLabel: "P(segment survives)",
		FailLabel: "P(segment lost), log", YMin: 0, YMax: 1.02, LegendBelow: true,
	}
	var rows []sim.DurabilityRow
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "audit days\tchurn/month\texact\tMonte-Carlo\tstderr\trepairs/yr\t")
	for _, a := range audits {
		name := fmt.Sprintf("audit every %g days", a)
		if a == 0 {
			name = "no repair"
		}
		s := sim.Series{Name: name}
		for _, c := range churns {
			d := sim.Durability{K: o.k, M: o.m, Uptime: o.uptime, MonthlyChurn: c, AuditDays: a, Threshold: o.threshold, HorizonDays: o.horizon}
			if err := d.Validate(); err != nil {
				return err
			}
			exact := d.Markov()
			est, reps := d.MonteCarlo(o.trials, rng)
			rows = append(rows, sim.DurabilityRow{Model: d, Exact: exact, MC: est, MCRepairs: reps})
			s.X = append(s.X, c)
			s.Exact = append(s.Exact, exact.Survive)
			s.Fail = append(s.Fail, exact.Lost)
			s.MC = append(s.MC, est)
			fmt.Fprintf(tw, "%g\t%g\t%.6f\t%.6f\t%.6f\t%.1f\t\n", a, c, exact.Survive, est.P, est.StdErr, exact.Repairs)
		}
		fig.Series = append(fig.Series, s)
	}
	tw.Flush()
	if err := writeCSV(filepath.Join(o.out, "durability.csv"), func(w io.Writer) error { return sim.WriteDurabilityCSV(w, rows) }); err != nil {
		return err
	}
	if err := fig.SavePNG(filepath.Join(o.out, "durability.png")); err != nil {
		return err
	}
	fmt.Fprintf(out, "durability: %d points written to %s.csv and .png\n", len(rows), filepath.Join(o.out, "durability"))
	return nil
}

// writeCSV creates path and fills it with write.
func writeCSV(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return write(f)
}

func allowanceCommand() *cobra.Command {
	m := sim.AllowanceModel{Nodes: 300, JoinDays: 60, Days: 365, TierMin: 0, TierMax: 8, UptimeMin: 0.5, UptimeMax: 0.8,
		Liars: 0.3, LiarFactor: 16, Starters: 300, Starter: karma.DefaultStarter, StarterShare: 0.125,
		Growth: karma.ShownGrowth, Floor: karma.ShownFloor, Demand: 0.2, Seed: 1}
	out := "."
	c := &cobra.Command{
		Use:   "allowance",
		Short: "Allowance granted against the network's real capacity, day by day from an empty network",
		Long: `allowance runs karma's allowance rules on a modelled network that starts
empty: nodes join over --join-days sharing random tiers, online a random share
of the time, some of them (--liars) declaring --liar-factor times the disk they
have; --starters accounts have no node. Every day each account uploads --demand
of the room its allowance leaves, spread over other accounts' nodes. A node
counts once vetted; its credited space is at most --growth times the shard
bytes it holds for accounts with earned allowances plus --floor, and only what
it holds once it has refused a put for lack of room.

It writes allowance.csv in --out (one line a day) and prints the largest
ratio of allowance granted to the network's real capacity, in shard bytes
(the same as file bytes against capacity / expansion).`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			days, err := m.Run()
			if err != nil {
				return err
			}
			if err := writeCSV(filepath.Join(out, "allowance.csv"), func(w io.Writer) error { return sim.WriteAllowanceCSV(w, days) }); err != nil {
				return err
			}
			s := sim.Summarize(days)
			l := s.Last
			fmt.Fprintf(cmd.OutOrStdout(), "allowance: earned/capacity max=%.3f (day %d) granted/capacity max=%.3f (day %d) half-full day=%d\n",
				s.MaxEarned, s.MaxEarnedDay, s.MaxGranted, s.MaxGrantedDay, s.HalfFullDay)
			fmt.Fprintf(cmd.OutOrStdout(), "day %d: nodes=%d capacity=%.0f GiB declared=%.0f granted=%.0f earned=%.0f used=%.0f starter-used=%.0f refused=%.0f\n",
				l.Day, l.Nodes, gib(l.Capacity), gib(l.Declared), gib(l.Granted), gib(l.Earned), gib(l.Used), gib(l.StarterUse), gib(l.Refused))
			fmt.Fprintf(cmd.OutOrStdout(), "allowance: %d days written to %s\n", len(days), filepath.Join(out, "allowance.csv"))
			return nil
		}),
	}
	f := c.Flags()
	f.IntVar(&m.Nodes, "nodes", m.Nodes, "nodes that join")
	f.IntVar(&m.JoinDays, "join-days", m.JoinDays, "days over which they join")
	f.IntVar(&m.Days, "days", m.Days, "days to model")
	f.IntVar(&m.TierMin, "tier-min", m.TierMin, "smallest tier shared (2^t GiB)")
	f.IntVar(&m.TierMax, "tier-max", m.TierMax, "largest tier shared")
	f.Float64Var(&m.UptimeMin, "uptime-min", m.UptimeMin, "lowest node uptime")
	f.Float64Var(&m.UptimeMax, "uptime-max", m.UptimeMax, "highest node uptime")
	f.Float64Var(&m.Liars, "liars", m.Liars, "share of nodes declaring more than their disk")
	f.Float64Var(&m.LiarFactor, "liar-factor", m.LiarFactor, "how many times their disk they declare")
	f.IntVar(&m.Starters, "starters", m.Starters, "accounts without a node")
	f.Int64Var(&m.Starter, "starter", m.Starter, "starter allowance in bytes")
	f.Float64Var(&m.StarterShare, "starter-share", m.StarterShare, "share of a node's free room that starter accounts' shards may take (0: no bound)")
	f.Float64Var(&m.Growth, "growth", m.Growth, "credited space per byte held for others")
	f.Int64Var(&m.Floor, "floor", m.Floor, "credited space before holding anything, in bytes")
	f.Float64Var(&m.Demand, "demand", m.Demand, "share of its free allowance an account uploads each day")
	f.Uint64Var(&m.Seed, "seed", m.Seed, "seed of the model's draws")
	f.StringVar(&out, "out", out, "folder for allowance.csv")
	return c
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }

func karmaCommand() *cobra.Command {
	m := sim.KarmaModel{Nodes: 200, JoinDays: 60, Days: 365, TierMin: 0, TierMax: 4,
		Shares: [6]float64{0.5, 0.2, 0.15, 0.15, 0, 0}, Floor: karma.ShownFloor,
		Growth: karma.ShownGrowth, Demand: 0.2, StatementDays: 7, OwnerReports: 1, Seed: 1}
	out := "."
	c := &cobra.Command{
		Use:   "karma",
		Short: "Allowance by class of node (honest, lazy, free-riding, cheating, colluding) over a year from an empty network",
		Long: `karma runs the providers' standing and allowance rules (karma.Observer, as
every provider runs it, and karma.AccountAllowance) on a modelled network that
starts empty: --nodes join over --join-days, sharing tiers --tier-min..--tier-max,
each honest (online 90-100 % of the day, keeps what it holds), lazy (online
30-60 %), free-riding (refuses every put), cheating (deletes what it accepts,
the providers' test shards included), cheating-smart (keeps the test shards,
deletes the rest) or colluding (keeps the test shards, refuses other puts, and
states that the other colluding nodes hold its whole allowance), in the shares
--honest, --lazy, --free-riding, --cheating, --cheating-smart and --colluding.
Each day, with probability --owner-reports, an owner's report
of a shard a cheating node deleted reaches the observer (0: observers alone).
Each day every account uploads --demand of the room its allowance leaves,
spread over the nodes that take puts by the room they declare, and every
--statement-days it states to the observer what each node holds of it. Once
vetted, a node is credited its shared space up to --growth times what other
accounts with earned allowances state it holds plus --floor, times its uptime;
nothing while malicious.

It prints, over the last 30 days, each class's share of what was contributed
(disk times time online, honest and lazy nodes only) and of the allowance
granted, and the allowance granted over the capacity (the honest and lazy
nodes' disk); it writes karma.csv and karma.png in --out.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			days, err := m.Run()
			if err != nil {
				return err
			}
			if err := writeCSV(filepath.Join(out, "karma.csv"), func(w io.Writer) error { return sim.WriteKarmaCSV(w, days) }); err != nil {
				return err
			}
			if err := sim.KarmaFigure(days).SavePNG(filepath.Join(out, "karma.png")); err != nil {
				return err
			}
			s := sim.SummarizeKarma(days, karma.WindowEpochs)
			for c, name := range sim.ClassNames {
				if s.Nodes[c] == 0 {
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "karma %s: nodes=%d contribution-share=%.3f allowance-share=%.3f\n",
					name, s.Nodes[c], s.ContributionShare[c], s.AllowanceShare[c])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "karma network: granted/capacity=%.3f (after day %d: min %.3f, max %.3f; 0.5 first reached on day %d)\n",
				s.Ratio, karma.VettingEpochs, s.MinRatio, s.MaxRatio, s.HalfDay)
			fmt.Fprintf(cmd.OutOrStdout(), "karma: %d days written to %s and %s\n", len(days), filepath.Join(out, "karma.csv"), filepath.Join(out, "karma.png"))
			return nil
		}),
	}
	f := c.Flags()
	f.IntVar(&m.Nodes, "nodes", m.Nodes, "nodes that join")
	f.IntVar(&m.JoinDays, "join-days", m.JoinDays, "days over which they join")
	f.IntVar(&m.Days, "days", m.Days, "days to model")
	f.IntVar(&m.TierMin, "tier-min", m.TierMin, "smallest tier shared (2^t GiB)")
	f.IntVar(&m.TierMax, "tier-max", m.TierMax, "largest tier shared")
	for c, name := range sim.ClassNames {
		f.Float64Var(&m.Shares[c], name, m.Shares[c], "share of "+name+" nodes")
	}
	f.Int64Var(&m.Floor, "floor", m.Floor, "credited space before holding anything, in bytes")
	f.Float64Var(&m.Growth, "growth", m.Growth, "credited space per byte owners state a node holds (0: the floor alone)")
	f.Float64Var(&m.Demand, "demand", m.Demand, "share of its free allowance an account uploads each day")
	f.IntVar(&m.StatementDays, "statement-days", m.StatementDays, "days between an account's statements of what nodes hold of it")
	f.Float64Var(&m.OwnerReports, "owner-reports", m.OwnerReports, "daily chance that an owner's report of a deleted shard reaches the observer")
	f.Uint64Var(&m.Seed, "seed", m.Seed, "seed of the model's draws")
	f.StringVar(&out, "out", out, "folder for karma.csv and karma.png")
	return c
}
