package jfcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// nodeConfigKeys are the keys of a `jellyfish node` configuration file, in
// the order --print-node-config writes them, under headings. Each is a
// flag of the command; the file cannot name --node-config or
// --print-node-config, nor hidden flags.
var nodeConfigKeys = []struct {
	heading string
	keys    []string
}{
	{"Identity, records and shards", []string{"data-dir", "tier"}},
	{"Network", []string{"listen", "bootstrap", "bootstrap-file", "announce", "port-mapping", "hole-punching", "tcp-congestion", "dht-mode"}},
	{"Owner's account", []string{"account-config", "account-passphrase-file", "caretaker-interval", "maintain", "maintain-interval"}},
	{"Shard collection", []string{"collect-grace", "collect-interval"}},
	{"Other accounts' shards", []string{"admit-all", "starter-cap", "starter-share", "sharing-share"}},
	{"Status page and metrics", []string{"status-addr", "status-public"}},
	{"Shutdown", []string{"shutdown-grace"}},
	{"Logging (standard error)", []string{"log-format", "log-level"}},
}

func isNodeConfigKey(name string) bool {
	for _, g := range nodeConfigKeys {
		if slices.Contains(g.keys, name) {
			return true
		}
	}
	return false
}

// applyNodeConfig sets the flags of fl named in the YAML file at path,
// except those given on the command line. The file is a mapping from
// flag names to values: a scalar, or for repeatable flags a list. On an
// error some flags may be set already: the command is not to run.
func applyNodeConfig(fl *pflag.FlagSet, path string) error {
	path, err := expandHome(path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--node-config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("--node-config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file, or only comments
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("--node-config %s: want a mapping of flag names to values (line %d)", path, top.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		name := k.Value
		where := fmt.Sprintf("--node-config %s line %d: %s", path, k.Line, name)
		f := fl.Lookup(name)
		if k.Kind != yaml.ScalarNode || f == nil || !isNodeConfigKey(name) {
			return fmt.Errorf("--node-config %s line %d: %q is not a key of the node's configuration (see --print-node-config)", path, k.Line, name)
		}
		if seen[name] {
			return fmt.Errorf("%s: given twice", where)
		}
		seen[name] = true
		if f.Changed {
			continue // the command line wins
		}
		values, list, err := configValues(v)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		sv, isList := f.Value.(pflag.SliceValue)
		switch {
		case isList:
			err = sv.Replace(values)
		case list:
			err = errors.New("want one value, not a list")
		default:
			err = fl.Set(name, strings.Join(values, "")) // null: no value
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

// configValues returns the values of a configuration entry: a scalar's
// text, or the items of a list of scalars; null is no value (an empty
// list, an empty string).
func configValues(v *yaml.Node) (values []string, list bool, err error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return []string{}, false, nil
		}
		return []string{v.Value}, false, nil
	case yaml.SequenceNode:
		out := []string{}
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return nil, true, fmt.Errorf("line %d: list items must be plain values", it.Line)
			}
			out = append(out, it.Value)
		}
		return out, true, nil
	}
	return nil, false, fmt.Errorf("want a value or a list of values")
}

// printNodeConfig writes the configuration fl holds (defaults, with the
// file and the flags given applied) as a commented YAML file that
// --node-config reads back.
func printNodeConfig(w io.Writer, fl *pflag.FlagSet) error {
	var b bytes.Buffer
	b.WriteString(`# Configuration of jellyfish node, for --node-config FILE. Each key is a flag
# of the command without its leading dashes; a flag given on the command line
# wins over the file. Repeatable flags take a list. Paths starting with ~/ are
# in the home folder of the user running the node; other relative paths are
# taken from the node's working folder. Written by --print-node-config.
`)
	for _, g := range nodeConfigKeys {
		fmt.Fprintf(&b, "\n## %s\n", g.heading)
		for _, name := range g.keys {
			f := fl.Lookup(name)
			if f == nil {
				return fmt.Errorf("print-node-config: no flag %q", name)
			}
			for _, l := range wrapWords(f.Usage, 76) {
				fmt.Fprintf(&b, "# %s\n", l)
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				items := sv.GetSlice()
				if len(items) == 0 {
					fmt.Fprintf(&b, "%s: []\n", name)
					continue
				}
				fmt.Fprintf(&b, "%s:\n", name)
				for _, it := range items {
					fmt.Fprintf(&b, "  - %s\n", yamlScalar(it))
				}
				continue
			}
			val := f.Value.String()
			if f.Value.Type() == "string" {
				val = yamlScalar(val)
			}
			fmt.Fprintf(&b, "%s: %s\n", name, val)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// yamlScalar writes s as a YAML scalar that reads back as the string s.
func yamlScalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// wrapWords splits s into lines of at most width characters where it can.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
