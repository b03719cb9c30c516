package sim

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one curve of a figure: the exact value as a line and, where
// present, Monte-Carlo estimates as points with ±2 standard error bars.
type Series struct {
	Name  string
	X     []float64
	Exact []float64
	// Fail is 1-Exact computed on its own (accurate when tiny); it feeds
	// the lower, logarithmic panel.
	Fail []float64
	MC   []Estimate // nil: no Monte-Carlo points
}

// Figure is a titled plot of several series: the probability on a linear
// axis, and below it (when FailLabel is set) its complement on a
// logarithmic axis, where schemes that all look like 1.0 above differ.
type Figure struct {
	Title, XLabel, YLabel string
	FailLabel             string
	Series                []Series
	// YMin and YMax fix the upper panel's y range when YMax > YMin.
	YMin, YMax float64
	// LegendBelow puts the legend in the lower panel's bottom right
	// corner instead of the upper panel's.
	LegendBelow bool
	// LegendTop puts the legend of the upper panel at its top.
	LegendTop bool
	// LegendNote heads the legend; empty means the note on exact lines
	// and Monte-Carlo points.
	LegendNote string
}

// failFloor is the smallest failure probability drawn on the log panel.
const failFloor = 1e-12

// SavePNG renders f as a PNG, 16 cm wide at 150 dpi.
func (f Figure) SavePNG(path string) error {
	top, err := f.panel(false)
	if err != nil {
		return err
	}
	plots := [][]*plot.Plot{{top}}
	h := 10 * vg.Centimeter
	if f.FailLabel != "" {
		bottom, err := f.panel(true)
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{bottom})
		h = 19 * vg.Centimeter
	}
	img := vgimg.NewWith(vgimg.UseWH(16*vg.Centimeter, h), vgimg.UseDPI(150))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(10), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(out); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return out.Close()
}

// panel draws the probabilities, or with fail their complements on a log
// axis.
func (f Figure) panel(fail bool) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = f.XLabel
	p.Add(plotter.NewGrid())
	if fail {
		p.Y.Label.Text = f.FailLabel
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = decades{}
		p.Legend.Top = false
	} else {
		p.Title.Text = f.Title
		p.Y.Label.Text = f.YLabel
		p.Legend.Top = f.LegendTop
		p.Legend.YOffs = vg.Points(12)
		if f.LegendTop {
			p.Legend.YOffs = 0
		}
	}
	p.Legend.Left = false
	minY, maxY := 1.0, failFloor
	legend := make([][]plot.Thumbnailer, len(f.Series))
	for i, s := range f.Series {
		col := plotutil.Color(i)
		var line, mc plotter.XYs
		var errs plotter.YErrors
		for j := range s.X {
			y := s.Exact[j]
			if fail {
				y = s.Fail[j]
			}
			if fail && y < failFloor {
				continue
			}
			line = append(line, plotter.XY{X: s.X[j], Y: y})
			minY, maxY = math.Min(minY, y), math.Max(maxY, y)
		}
		for j, e := range s.MC {
			y, se := e.P, 2*e.StdErr
			if fail {
				y = 1 - e.P
				if y <= 0 {
					continue // no failure seen: nothing to draw on a log axis
				}
			}
			mc = append(mc, plotter.XY{X: s.X[j], Y: y})
			lo := se
			if fail && y-lo <= 0 {
				lo = y * 0.9 // keep the bar on the log axis
			}
			errs = append(errs, struct{ Low, High float64 }{lo, se})
		}
		if len(line) > 1 {
			l, err := plotter.NewLine(line)
			if err != nil {
				return nil, fmt.Errorf("plot %s: %w", s.Name, err)
			}
			l.Color = col
			l.Width = vg.Points(1.5)
			p.Add(l)
			legend[i] = append(legend[i], l)
		}
		if len(mc) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(mc)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.Name, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: darker(col), Radius: vg.Points(1.6), Shape: draw.CircleGlyph{}}
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{mc, errs})
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.Name, err)
		}
		eb.Color = darker(col)
		p.Add(sc, eb)
		legend[i] = append(legend[i], sc)
	}
	if fail == f.LegendBelow { // one legend serves both panels
		note := f.LegendNote
		if note == "" {
			note = "lines: exact; points: Monte-Carlo ±2 SE"
		}
		p.Legend.Add(note)
		for i, s := range f.Series {
			p.Legend.Add(s.Name, legend[i]...)
		}
	}
	if fail {
		p.Y.Min = math.Max(failFloor, math.Pow(10, math.Floor(math.Log10(minY))))
		p.Y.Max = math.Min(1, math.Pow(10, math.Ceil(math.Log10(maxY))))
		if p.Y.Max <= p.Y.Min {
			p.Y.Max = p.Y.Min * 10
		}
	} else if f.YMax > f.YMin {
		p.Y.Min, p.Y.Max = f.YMin, f.YMax
	}
	return p, nil
}

// decades marks every power of ten, labelled as 1e-k.
type decades struct{}

func (decades) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		out = append(out, plot.Tick{Value: math.Pow(10, e), Label: fmt.Sprintf("1e%d", int(e))})
	}
	if len(out) > 8 { // label every other decade when crowded
		for i := range out {
			if i%2 == 1 {
				out[i].Label = ""
			}
		}
	}
	return out
}

// darker returns c at 70% brightness, for points over their line.
func darker(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.RGBA{uint8(r >> 8 * 7 / 10), uint8(g >> 8 * 7 / 10), uint8(b >> 8 * 7 / 10), 255}
}
