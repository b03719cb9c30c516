package jfcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// nodeFlags returns a fresh node command's flags, parsed from args.
func nodeFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	c := newNodeCommand()
	if err := c.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return c.Flags()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func flagValue(t *testing.T, fl *pflag.FlagSet, name string) string {
	t.Helper()
	f := fl.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

// TestNodeConfigFile: the file sets the flags it names, lists replace the
// defaults of repeatable flags, null empties a value, and a flag given on
// the command line wins over the file.
func TestNodeConfigFile(t *testing.T) {
	path := writeConfig(t, `# a node
data-dir: /srv/jellyfish
tier: 3
listen:
  - /ip4/0.0.0.0/tcp/4101
bootstrap: /ip4/192.0.2.1/tcp/4001/p2p/12D3KooWExample
status-addr:
collect-grace: 48h
log-level: debug
`)
	fl := nodeFlags(t, "--tier", "5", "--log-level", "warn")
	if err := applyNodeConfig(fl, path); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"data-dir": "/srv/jellyfish", "tier": "5", "listen": "/ip4/0.0.0.0/tcp/4101",
		"bootstrap": "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWExample", "status-addr": "",
		"collect-grace": "48h0m0s", "log-level": "warn", "collect-interval": "6h0m0s",
	} {
		if got := flagValue(t, fl, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// An empty list empties a repeatable flag; an empty file changes nothing.
	fl = nodeFlags(t)
	if err := applyNodeConfig(fl, writeConfig(t, "listen: []\n")); err != nil || flagValue(t, fl, "listen") != "" {
		t.Fatalf("listen: []: %q %v", flagValue(t, fl, "listen"), err)
	}
	fl = nodeFlags(t)
	if err := applyNodeConfig(fl, writeConfig(t, "# nothing\n")); err != nil || flagValue(t, fl, "tier") != "0" {
		t.Fatalf("empty file: %v", err)
	}
}

// TestNodeConfigFileErrors: a file naming something that is not a key, a
// hidden flag or the config flags themselves, a key twice, a list for a
// single value or a bad value is refused with its line.
func TestNodeConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"tierr: 3\n", `line 1: "tierr" is not a key`},
		{"test-clock-skew: 1h\n", `"test-clock-skew" is not a key`},
		{"node-config: other.yaml\n", `"node-config" is not a key`},
		{"print-node-config: true\n", `"print-node-config" is not a key`},
		{"config: rclone.conf\n", `"config" is not a key`},
		{"tier: 2\ntier: 3\n", "line 2: tier: given twice"},
		{"tier: [1, 2]\n", "want one value, not a list"},
		{"data-dir: /x\ntier: lots\n", "line 2: tier"},
		{"listen:\n  - {a: b}\n", "list items must be plain values"},
		{"- tier\n", "want a mapping"},
		{"tier: [\n", "yaml"},
	} {
		fl := nodeFlags(t)
		err := applyNodeConfig(fl, writeConfig(t, c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
	if err := applyNodeConfig(nodeFlags(t), filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// TestPrintNodeConfig: the printed configuration names every key with its
// default, reads back as the same configuration, and shows values set by
// a file and by flags.
func TestPrintNodeConfig(t *testing.T) {
	var out bytes.Buffer
	if err := printNodeConfig(&out, nodeFlags(t)); err != nil {
		t.Fatal(err)
	}
	printed := out.String()
	for _, line := range []string{
		"data-dir: ~/.local/share/jellyfish/node\n", "tier: 0\n", "listen:\n  - /ip4/0.0.0.0/tcp/4001\n  - /ip4/0.0.0.0/udp/4001/quic-v1\n",
		"bootstrap: []\n", `maintain: ""` + "\n", "status-addr: 127.0.0.1:7781\n", "status-public: false\n",
		"collect-grace: 720h0m0s\n", "log-level: info\n", "# shared space tier: 2^tier GiB, 0 to 20\n",
	} {
		if !strings.Contains(printed, line) {
			t.Errorf("printed configuration lacks %q:\n%s", line, printed)
		}
	}
	// Every flag of the command but the configuration's own and hidden
	// ones is a key.
	newNodeCommand().Flags().VisitAll(func(f *pflag.Flag) {
		own := f.Name == "node-config" || f.Name == "print-node-config" || f.Name == "help"
		if !own && !f.Hidden && !isNodeConfigKey(f.Name) {
			t.Errorf("flag --%s is not a configuration key", f.Name)
		}
		if own && isNodeConfigKey(f.Name) {
			t.Errorf("--%s is a configuration key", f.Name)
		}
	})

	// Printed, read back, printed again: the same text.
	fl := nodeFlags(t)
	if err := applyNodeConfig(fl, writeConfig(t, printed)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	printNodeConfig(&again, fl)
	if again.String() != printed {
		t.Errorf("printed twice differs:\n%s\n---\n%s", printed, again.String())
	}

	// A file and flags show in what is printed.
	fl = nodeFlags(t, "--bootstrap", "/ip4/192.0.2.7/tcp/1/p2p/12D3KooWExample", "--status-addr", "")
	if err := applyNodeConfig(fl, writeConfig(t, "tier: 4\nmaintain: 'jellyfish:'\n")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	printNodeConfig(&out, fl)
	for _, line := range []string{"tier: 4\n", "maintain: 'jellyfish:'\n", "bootstrap:\n  - /ip4/192.0.2.7/tcp/1/p2p/12D3KooWExample\n", `status-addr: ""` + "\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("printed configuration lacks %q:\n%s", line, out.String())
		}
	}
}

// TestNodeAdmissionFlags: by default a node enforces the admission policy
// with its defaults; the file and the flags set it, --admit-all turns it
// off, and nonsense is refused.
func TestNodeAdmissionFlags(t *testing.T) {
	parse := func(file string, args ...string) (provider.AdmissionConfig, error) {
		t.Helper()
		c, o := nodeCommand()
		if err := c.ParseFlags(args); err != nil {
			return provider.AdmissionConfig{}, err
		}
		if file != "" {
			if err := applyNodeConfig(c.Flags(), writeConfig(t, file)); err != nil {
				return provider.AdmissionConfig{}, err
			}
		}
		return o.admission()
	}
	got, err := parse("")
	if err != nil || got != (provider.AdmissionConfig{StarterBytes: 256 << 20, StarterShare: 1.0 / 8, SharingShare: 1.0 / 4}) {
		t.Fatalf("default: %+v, %v", got, err)
	}
	got, err = parse("starter-cap: 64Mi\nstarter-share: 0.5\n", "--sharing-share", "1")
	if err != nil || got != (provider.AdmissionConfig{StarterBytes: 64 << 20, StarterShare: 0.5, SharingShare: 1}) {
		t.Fatalf("set: %+v, %v", got, err)
	}
	if got, err := parse("admit-all: true\n"); err != nil || !got.AdmitAll {
		t.Fatalf("admit-all: %+v, %v", got, err)
	}
	for _, bad := range [][]string{{"--starter-cap", "0"}, {"--starter-share", "0"}, {"--sharing-share", "1.5"}, {"--starter-share", "-1"}} {
		if _, err := parse("", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
