package jfcmd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// demoPassword is the demo account's password, used unless
// JELLYFISH_PASSWORD is set.
const demoPassword = "tidal lantern orbit gravel mosaic"

func init() {
	o := testnetOptions{nodes: 9, dir: "jellyfish-demo", quotaMiB: 256, account: "demo"}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run Jellyfish's main job on a local network: sync a folder up, lose a third of the nodes, check it",
		Long: `demo starts a network of provider nodes in this process (like testnet),
creates an account, writes a sample folder, and then runs the real commands
against the network as a user would, each as its own process:

    jellyfish --config DIR/rclone.conf sync DIR/sample jellyfish:sample
    jellyfish --config DIR/rclone.conf lsl jellyfish:sample
    (a third of the nodes are stopped)
    jellyfish --config DIR/rclone.conf check DIR/sample jellyfish:sample --download

The check downloads every file from the surviving nodes and compares it byte
for byte. Afterwards DIR/rclone.conf is left for trying more commands
against "jellyfish testnet --dir DIR --account demo".`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(context.Background())
			defer stop()
			return runDemo(ctx, cmd, o)
		}),
	}
	c.Flags().IntVar(&o.nodes, "nodes", o.nodes, "number of provider nodes (at least 3)")
	c.Flags().StringVar(&o.dir, "dir", o.dir, "folder for the network, the sample and rclone.conf")
	o.log.register(c)
	_ = c.Flags().Set("log-level", "error")
	commands = append(commands, c)
}

func runDemo(ctx context.Context, cmd *cobra.Command, o testnetOptions) (err error) {
	if o.nodes < 3 {
		return fmt.Errorf("--nodes %d: the demo needs at least 3", o.nodes)
	}
	if os.Getenv(envPassword) == "" {
		os.Setenv(envPassword, demoPassword)
	}
	out := cmd.OutOrStdout()
	dir, err := expandHome(o.dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	o.dir = dir
	fmt.Fprintf(out, "== starting %d provider nodes on 127.0.0.1 and creating account %q\n", o.nodes, o.account)
	nw, ready, err := startTestnet(ctx, cmd, o)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "== stopping the network")
		if cerr := nw.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	sample := filepath.Join(dir, "sample")
	n, size, err := writeSample(sample)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== wrote a sample folder: %d files, %d bytes, in %s\n", n, size, sample)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	run := func(args ...string) error {
		full := append([]string{"--config", ready.ConfigFile}, args...)
		fmt.Fprintf(out, "$ jellyfish %s\n", strings.Join(full, " "))
		c := exec.CommandContext(ctx, exe, full...)
		c.Stdout, c.Stderr = out, cmd.ErrOrStderr()
		if err := c.Run(); err != nil {
			return fmt.Errorf("jellyfish %s: %w", args[0], err)
		}
		return nil
	}
	if err := run("sync", sample, RemoteName+":sample", "--stats-one-line", "--stats", "0"); err != nil {
		return err
	}
	if err := run("lsl", RemoteName+":sample"); err != nil {
		return err
	}
	third := o.nodes / 3
	fmt.Fprintf(out, "== stopping %d of the %d nodes (node", third, o.nodes)
	for i := o.nodes - third; i < o.nodes; i++ {
		if err := nw.Kill(i); err != nil {
			return err
		}
		fmt.Fprintf(out, " %d", i)
	}
	fmt.Fprintln(out, ")")
	if err := run("check", sample, RemoteName+":sample", "--download"); err != nil {
		return err
	}
	fmt.Fprintf(out, "== every file read back byte for byte with a third of the nodes gone\n")
	fmt.Fprintf(out, "== try more: jellyfish testnet --dir %s ... or see %s\n", dir, ready.ConfigFile)
	return nil
}

// writeSample writes a small folder tree: text, random binary, an empty
// file, nested folders. It returns the file count and total size.
func writeSample(dir string) (files int, size int64, err error) {
	rng := rand.New(rand.NewPCG(7, 11))
	words := strings.Fields("jellyfish shares disk with peers and keeps files safe on other disks compressed encrypted erasure coded audited no server no company in the middle")
	text := func(n int) []byte {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		}
		return []byte(b.String())
	}
	binary := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files0 := map[string][]byte{
		"README.txt":             text(2000),
		"notes/2026/january.txt": text(30000),
		"notes/2026/march.txt":   text(120000),
		"photos/beach.raw":       binary(3 << 20),
		"photos/forest.raw":      binary(1<<20 + 12345),
		"empty.txt":              nil,
		"code/main.go":           []byte("package main\n\nfunc main() { println(\"hello from jellyfish\") }\n"),
	}
	for name, data := range files0 {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, 0, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return 0, 0, err
		}
		files++
		size += int64(len(data))
	}
	return files, size, os.MkdirAll(filepath.Join(dir, "empty-folder"), 0o755)
}
