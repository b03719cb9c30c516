package sim

import (
	"encoding/csv"
	"io"
	"strconv"
)

// AvailabilityRow is one point of an availability figure.
type AvailabilityRow struct {
	Varied string  // the parameter along the x axis: "nodes" or "m"
	Value  float64 // its value
	Setup  Setup
	Exact  float64
	MC     Estimate
}

// WriteAvailabilityCSV writes rows with a header line.
func WriteAvailabilityCSV(w io.Writer, rows []AvailabilityRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"varied", "value", "policy", "k", "m", "uptime", "nodes", "exact", "montecarlo", "stderr", "trials"})
	for _, r := range rows {
		s := r.Setup
		cw.Write([]string{r.Varied, g(r.Value), string(s.Policy), strconv.Itoa(s.K), strconv.Itoa(s.M), g(s.Uptime),
			strconv.Itoa(s.Nodes), g(r.Exact), g(r.MC.P), g(r.MC.StdErr), strconv.Itoa(r.MC.Trials)})
	}
	cw.Flush()
	return cw.Error()
}

// DurabilityRow is one point of a durability figure.
type DurabilityRow struct {
	Model     Durability
	Exact     DurabilityResult
	MC        Estimate
	MCRepairs float64
}

// WriteDurabilityCSV writes rows with a header line.
func WriteDurabilityCSV(w io.Writer, rows []DurabilityRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"varied", "value", "k", "m", "uptime", "monthly_churn", "audit_days", "threshold", "horizon_days",
		"exact", "exact_lost", "montecarlo", "stderr", "trials", "repairs_exact", "repairs_montecarlo"})
	for _, r := range rows {
		d := r.Model
		cw.Write([]string{"monthly_churn", g(d.MonthlyChurn), strconv.Itoa(d.K), strconv.Itoa(d.M), g(d.Uptime), g(d.MonthlyChurn),
			g(d.AuditDays), strconv.Itoa(d.Threshold), g(d.HorizonDays), g(r.Exact.Survive), g(r.Exact.Lost),
			g(r.MC.P), g(r.MC.StdErr), strconv.Itoa(r.MC.Trials), g(r.Exact.Repairs), g(r.MCRepairs)})
	}
	cw.Flush()
	return cw.Error()
}

func g(x float64) string { return strconv.FormatFloat(x, 'g', 10, 64) }

// WriteAllowanceCSV writes one line per day of an allowance run, with a
// header line; sizes in GiB.
func WriteAllowanceCSV(w io.Writer, days []AllowanceDay) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"day", "nodes", "capacity_gib", "declared_gib", "granted_gib", "earned_gib", "used_gib", "starter_used_gib", "refused_gib"})
	gib := func(b int64) string { return g(float64(b) / (1 << 30)) }
	for _, d := range days {
		cw.Write([]string{strconv.Itoa(d.Day), strconv.Itoa(d.Nodes), gib(d.Capacity), gib(d.Declared), gib(d.Granted),
			gib(d.Earned), gib(d.Used), gib(d.StarterUse), gib(d.Refused)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteKarmaCSV writes one line a day of a karma run: per class the nodes
// joined, their contribution and their allowance (bytes), then capacity,
// granted and the shard bytes stored.
func WriteKarmaCSV(w io.Writer, days []KarmaDay) error {
	cw := csv.NewWriter(w)
	head := []string{"day"}
	for _, n := range ClassNames {
		head = append(head, n+"_nodes", n+"_contribution", n+"_allowance")
	}
	head = append(head, "capacity", "granted", "used")
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, d := range days {
		row := []string{strconv.Itoa(d.Day)}
		for c := range ClassNames {
			row = append(row, strconv.Itoa(d.Nodes[c]), g(d.Contribution[c]), g(d.Allowance[c]))
		}
		row = append(row, g(d.Capacity), g(d.Granted), g(d.Used))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
