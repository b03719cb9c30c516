package sim

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one curve of a figure: the exact value as a line and, where
// present, Monte-Carlo estimates as points with ±2 standard error bars.
type Series struct {
	Name  string
	X     []float64
	Exact []float64
	MC    []Estimate // nil: no Monte-Carlo points
}

// Figure is a titled plot of several series.
type Figure struct {
	Title, XLabel, YLabel string
	Series                []Series
	// YMin and YMax fix the y range when YMax > YMin.
	YMin, YMax float64
}

// SavePNG renders f as a PNG of about 16×10 cm at 150 dpi.
func (f Figure) SavePNG(path string) error {
	p := plot.New()
	p.Title.Text = f.Title
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Points(12)
	for i, s := range f.Series {
		col := plotutil.Color(i)
		pts := make(plotter.XYs, len(s.X))
		for j := range s.X {
			pts[j] = plotter.XY{X: s.X[j], Y: s.Exact[j]}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		l.Color = col
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name+" (exact)", l)
		if s.MC == nil {
			continue
		}
		mc := make(plotter.XYs, len(s.X))
		errs := make(plotter.YErrors, len(s.X))
		for j, e := range s.MC {
			mc[j] = plotter.XY{X: s.X[j], Y: e.P}
			errs[j].Low, errs[j].High = 2*e.StdErr, 2*e.StdErr
		}
		sc, err := plotter.NewScatter(mc)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: darker(col), Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{mc, errs})
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		eb.Color = darker(col)
		p.Add(sc, eb)
		p.Legend.Add(s.Name+" (Monte-Carlo ±2 SE)", sc)
	}
	if f.YMax > f.YMin {
		p.Y.Min, p.Y.Max = f.YMin, f.YMax
	}
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

// darker returns c at 70% brightness, for points over their line.
func darker(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.RGBA{uint8(r >> 8 * 7 / 10), uint8(g >> 8 * 7 / 10), uint8(b >> 8 * 7 / 10), 255}
}
