package nodestatus

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

//go:embed page.html
var pageHTML string

// page is the status page's template; its data is a Snapshot.
var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes":   formatBytes,
	"seconds": func(s float64) string { return formatDuration(time.Duration(s * float64(time.Second))) },
	"ago":     func(now, t time.Time) string { return formatDuration(now.Sub(t)) + " ago" },
	"percent": func(part, whole int64) string {
		if whole <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*float64(part)/float64(whole))
	},
	"figures": formatFigures,
	"short":   func(id string) string { return id[max(len(id)-8, 0):] },
	"signed":  func(s float64) string { return fmt.Sprintf("%+.3f s", s) },
}).Parse(pageHTML))

func renderPage(w io.Writer, s Snapshot) error { return page.Execute(w, s) }

// formatBytes writes n in binary units: "1.5 GiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatDuration writes d to the second, in its two largest units:
// "3d 4h", "2h 5m", "42s".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	s := int64(d / time.Second)
	parts := []struct {
		n    int64
		unit string
	}{{s / 86400, "d"}, {s / 3600 % 24, "h"}, {s / 60 % 60, "m"}, {s % 60, "s"}}
	var out []string
	for _, p := range parts {
		if p.n > 0 || len(out) > 0 {
			out = append(out, fmt.Sprintf("%d%s", p.n, p.unit))
		}
		if len(out) == 2 {
			break
		}
	}
	return strings.Join(out, " ")
}

// formatFigures writes a round's figures as "name value" pairs, sorted.
func formatFigures(m map[string]any) string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, strings.ReplaceAll(k, "_", " ")+" "+formatFigure(m[k]))
	}
	return strings.Join(out, " · ")
}

func formatFigure(v any) string {
	switch x := v.(type) {
	case float64:
		// Figures read back from JSON are float64, counts included.
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return fmt.Sprint(int64(x))
		}
	case map[string]any:
		var parts []string
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+": "+formatFigure(x[k]))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprint(v)
}
