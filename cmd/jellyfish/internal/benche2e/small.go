package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/jfcmd"
)

// cryptPassword is the crypt remote's password (obscured into the config).
const cryptPassword = "amber glacier pinwheel"

// smallTarget is one destination of the small-file sync.
type smallTarget struct {
	name  string
	dest  string
	first result
	again []result // the no-op re-syncs, in order
}

// median returns the no-op re-sync of median wall time.
func (t *smallTarget) median() result {
	rs := slices.Clone(t.again)
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.wall, b.wall) })
	return rs[len(rs)/2]
}

// runSmall syncs a tree of o.files small files into the network, into a
// local folder and into a crypt remote over a local folder, each with a
// fresh process, then syncs the unchanged tree again to each, o.resyncs
// times in turn (the machine's noise hits every target alike), and reports
// the median of each.
func runSmall(ctx context.Context, o options) error {
	var cl cleanups
	defer cl.run()
	if err := freshDir(&cl, o.work); err != nil {
		return err
	}
	if err := freshDir(&cl, o.smallDest); err != nil {
		return err
	}
	src := filepath.Join(o.work, "src")
	if err := writeTree(src, o.files, o.folders, o.fileSize); err != nil {
		return err
	}
	tn, err := startTestnet(ctx, &cl, o, o.dir, o.work)
	if err != nil {
		return err
	}
	var obscured bytes.Buffer
	logFile := filepath.Join(o.work, "client-small.log")
	if _, err := run(ctx, o, "/dev/null", logFile, &obscured, "obscure", cryptPassword); err != nil {
		return err
	}
	conf := filepath.Join(o.work, "rclone-small.conf")
	crypt := fmt.Sprintf("\n[crypt]\ntype = crypt\nremote = %s\npassword = %s\n",
		filepath.Join(o.smallDest, "crypt"), strings.TrimSpace(obscured.String()))
	if err := tn.writeConfig(o, conf, crypt); err != nil {
		return err
	}
	targets := []*smallTarget{
		{name: "local", dest: filepath.Join(o.smallDest, "local")},
		{name: "crypt", dest: "crypt:"},
		{name: "jellyfish", dest: jfcmd.RemoteName + ":small"},
	}
	for _, t := range targets {
		if t.first, err = run(ctx, o, conf, logFile, nil, "sync", src, t.dest); err != nil {
			return err
		}
		fmt.Printf("# sync to %s (%s): %.2fs, peak RSS %d MiB\n", t.name, t.dest, t.first.wall.Seconds(), t.first.maxRSS/mib)
	}
	// Not timed: every destination lists all the files.
	for _, t := range targets {
		var out bytes.Buffer
		if _, err := run(ctx, o, conf, logFile, &out, "lsf", "-R", "--files-only", t.dest); err != nil {
			return err
		}
		if n := strings.Count(out.String(), "\n"); n != o.files {
			return fmt.Errorf("%s lists %d files after the sync, want %d", t.name, n, o.files)
		}
	}
	for i := range max(1, o.resyncs) {
		for _, t := range targets {
			args := []string{"sync", src, t.dest}
			if i == 0 && t.name == "jellyfish" && o.cpuProfile != "" {
				args = append(args, "--cpuprofile", o.cpuProfile)
			}
			r, err := run(ctx, o, conf, logFile, nil, args...)
			if err != nil {
				return err
			}
			t.again = append(t.again, r)
			fmt.Printf("# no-op re-sync %d to %s: %.2fs, peak RSS %d MiB\n", i+1, t.name, r.wall.Seconds(), r.maxRSS/mib)
		}
	}
	// Read every file back (hashsum --download), a fresh process each; the
	// sums must agree with the local copy's.
	reads := map[string]result{}
	var want string
	for _, t := range targets {
		var out bytes.Buffer
		r, err := run(ctx, o, conf, logFile, &out, "hashsum", "blake3", "--download", t.dest)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		slices.Sort(lines)
		got := strings.Join(lines, "\n")
		if want == "" {
			want = got
		} else if got != want {
			return fmt.Errorf("%s reads back other contents than %s", t.name, targets[0].name)
		}
		reads[t.name] = r
		fmt.Printf("# read-back of %s: %.2fs, peak RSS %d MiB\n", t.name, r.wall.Seconds(), r.maxRSS/mib)
	}
	rate := func(r result) float64 { return float64(o.files) / r.wall.Seconds() }
	local, crypt2, jf := targets[0], targets[1], targets[2]
	defer func() {
		jr, lr, cr := reads["jellyfish"], reads["local"], reads["crypt"]
		fmt.Printf("small read-back (hashsum --download): jellyfish %.0f files/s (%.2fs) local %.0f files/s (%.2fs) crypt %.0f files/s (%.2fs) jellyfish/local=%.2f crypt/local=%.2f\n",
			rate(jr), jr.wall.Seconds(), rate(lr), lr.wall.Seconds(), rate(cr), cr.wall.Seconds(), rate(jr)/rate(lr), rate(cr)/rate(lr))
	}()
	fmt.Println()
	fmt.Printf("small sync (%d files of %d B in %d folders, fresh process each, network on %s, local and crypt on %s):\n",
		o.files, o.fileSize, o.folders, o.dir, o.smallDest)
	fmt.Printf("small sync: jellyfish %.0f files/s (%.2fs) local %.0f files/s (%.2fs) crypt %.0f files/s (%.2fs) jellyfish/local=%.2f crypt/local=%.2f\n",
		rate(jf.first), jf.first.wall.Seconds(), rate(local.first), local.first.wall.Seconds(), rate(crypt2.first), crypt2.first.wall.Seconds(),
		rate(jf.first)/rate(local.first), rate(crypt2.first)/rate(local.first))
	jfAgain, localAgain, cryptAgain := jf.median(), local.median(), crypt2.median()
	fmt.Printf("small no-op re-sync (median of %d): jellyfish %.0f files/s (%.2fs) local %.0f files/s (%.2fs) crypt %.0f files/s (%.2fs) jellyfish/local=%.2f crypt/local=%.2f (goal >= 0.5)\n",
		len(jf.again), rate(jfAgain), jfAgain.wall.Seconds(), rate(localAgain), localAgain.wall.Seconds(), rate(cryptAgain), cryptAgain.wall.Seconds(),
		rate(jfAgain)/rate(localAgain), rate(cryptAgain)/rate(localAgain))
	return nil
}

// writeTree writes files random files of size bytes spread over folders
// folders under dir.
func writeTree(dir string, files, folders, size int) error {
	rng := rand.NewChaCha8([32]byte{'s', 'm', 'a', 'l', 'l'})
	buf := make([]byte, size)
	for i := range files {
		d := filepath.Join(dir, fmt.Sprintf("folder-%02d", i%folders))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file-%04d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			n++
		}
		return err
	})
	if err == nil && n != files {
		err = fmt.Errorf("wrote %d files, want %d", n, files)
	}
	return err
}
