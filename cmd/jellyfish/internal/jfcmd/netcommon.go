package jfcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/lib/atexit"
	"github.com/spf13/cobra"
)

// bootstrapFlags are the --bootstrap and --bootstrap-file flags shared by
// every command that joins a network.
type bootstrapFlags struct {
	addrs []string
	file  string
}

func (b *bootstrapFlags) register(c *cobra.Command) {
	c.Flags().StringArrayVar(&b.addrs, "bootstrap", nil, "multiaddr of a network node, ending in /p2p/<peer ID> (repeatable)")
	c.Flags().StringVar(&b.file, "bootstrap-file", "", "file with one bootstrap multiaddr per line (blank lines and # comments ignored)")
}

// parse returns the bootstrap multiaddrs from the flags, in order, without
// duplicates. Every address must name its peer (/p2p/<ID>).
func (b *bootstrapFlags) parse() ([]ma.Multiaddr, error) {
	lines := append([]string(nil), b.addrs...)
	if b.file != "" {
		more, err := readBootstrapFile(b.file)
		if err != nil {
			return nil, err
		}
		lines = append(lines, more...)
	}
	return parseMultiaddrs(lines)
}

// readBootstrapFile returns the non-blank, non-comment lines of path.
func readBootstrapFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bootstrap file %s: %w", path, err)
	}
	return out, nil
}

// parseMultiaddrs parses bootstrap addresses, dropping duplicates and
// refusing any without a /p2p/ component.
func parseMultiaddrs(lines []string) ([]ma.Multiaddr, error) {
	seen := map[string]bool{}
	var out []ma.Multiaddr
	for _, s := range lines {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
			return nil, fmt.Errorf("bootstrap address %q has no /p2p/<peer ID>", s)
		}
		if !seen[a.String()] {
			seen[a.String()] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// logFlags are --log-format and --log-level of the long-running commands.
// They shadow rclone's global flags of the same names on these commands.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&l.format, "log-format", "text", "log format: text or json")
	c.Flags().StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

// logger returns a slog logger writing to w in the chosen format.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", l.level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// signalContext returns a context cancelled by SIGINT or SIGTERM. It
// disables rclone's own exit-on-signal handler (lib/atexit) first: that
// handler would os.Exit before the command has closed its nodes.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	atexit.IgnoreSignals()
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// runE wraps a command body: it silences cobra's usage dump for errors
// that are not about usage, and prints one clear line for an error
// instead of cobra's and rclone's two, then exits 1.
func runE(body func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		err := body(cmd, args)
		if err == nil {
			return nil
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Error: %s\n", explain(err))
		os.Exit(1)
		return nil
	}
}

// explain is err as one line, leading with what the user can act on.
func explain(err error) string {
	for _, m := range userMessages {
		if errors.Is(err, m.err) {
			if err.Error() == m.err.Error() {
				return m.msg
			}
			return m.msg + " (" + err.Error() + ")"
		}
	}
	return err.Error()
}

// userMessage is the wording shown for errors matching err.
type userMessage struct {
	err error
	msg string
}

// userMessages are filled by the files that know the errors.
var userMessages []userMessage

// expandHome replaces a leading "~/" with the user's home directory.
func expandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
	}
	return p, nil
}
