package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseInts parses a comma-separated list of integers and ranges, a range
// being "a-b" or "a-b:step": "1-10,20-100:10".
func ParseInts(s string) ([]int, error) {
	fs, err := ParseFloats(s)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(fs))
	for i, f := range fs {
		if f != math.Trunc(f) {
			return nil, fmt.Errorf("%q: %v is not a whole number", s, f)
		}
		out[i] = int(f)
	}
	return out, nil
}

// ParseFloats parses a comma-separated list of numbers and ranges, a range
// being "a-b" (step 1) or "a-b:step": "0-0.5:0.05,0.7".
func ParseFloats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		rng, stepText, hasStep := strings.Cut(part, ":")
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := strconv.ParseFloat(lo, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if !isRange {
			if hasStep {
				return nil, fmt.Errorf("%q: a step needs a range", part)
			}
			out = append(out, a)
			continue
		}
		b, err := strconv.ParseFloat(hi, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		step := 1.0
		if hasStep {
			if step, err = strconv.ParseFloat(stepText, 64); err != nil {
				return nil, fmt.Errorf("%q: %w", part, err)
			}
		}
		if !(step > 0) || b < a || (b-a)/step > 1e5 {
			return nil, fmt.Errorf("%q: want a-b:step with a ≤ b and a positive step", part)
		}
		for i := 0; ; i++ {
			x := a + float64(i)*step
			if x > b+step*1e-9 {
				break
			}
			// Keep decimal steps tidy (0.1+0.2 is not 0.3).
			out = append(out, math.Round(x*1e9)/1e9)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: empty list", s)
	}
	return out, nil
}

// Config is a redundancy scheme named as "k-of-n", k data shards of n.
type Config struct{ K, N int }

// ParseConfigs parses "3-of-10,29-of-80".
func ParseConfigs(s string) ([]Config, error) {
	var out []Config
	for _, part := range strings.Split(s, ",") {
		var c Config
		if _, err := fmt.Sscanf(strings.TrimSpace(part), "%d-of-%d", &c.K, &c.N); err != nil || c.K < 1 || c.N < c.K || c.N > 255 {
			return nil, fmt.Errorf("%q: want k-of-n with 1 ≤ k ≤ n ≤ 255", part)
		}
		out = append(out, c)
	}
	return out, nil
}
