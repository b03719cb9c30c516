package jellyfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/hash"
	"github.com/rclone/rclone/fs/sync"
	"github.com/rclone/rclone/fs/walk"
	"golang.org/x/term"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// envNewPassword gives `backend rotate` its new password where no
// new-password-file option is set and no terminal can be asked.
const envNewPassword = "JELLYFISH_NEW_PASSWORD"

// rotateFile, in the device slot, names the account a rotation begun here
// moves to, so an interrupted rotation resumes with it.
const rotateFile = "rotate.json"

type rotateState struct {
	NewAccount string `json:"new_account"`
}

// newPasswordMapper is the remote's config with another password, for
// opening the account a rotation moves to. It never writes the remote's
// config.
type newPasswordMapper struct {
	configmap.Mapper
	password string // obscured
}

func (m newPasswordMapper) Get(key string) (string, bool) {
	if key == "password" {
		return m.password, true
	}
	return m.Mapper.Get(key)
}

func (m newPasswordMapper) Set(key, value string) {}

// rotationPassword reads the new password of a rotation: from the file
// named by the new-password-file option, else from JELLYFISH_NEW_PASSWORD,
// else (twice) from the terminal.
func rotationPassword(opt map[string]string) (string, error) {
	if p, ok := opt["new-password-file"]; ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("jellyfish: rotate: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if pw := os.Getenv(envNewPassword); pw != "" {
		return pw, nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", fmt.Errorf("jellyfish: rotate: no new password: give -o new-password-file=PATH, set %s, or run it on a terminal", envNewPassword)
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return string(b), err
	}
	pw, err := read("New password: ")
	if err != nil {
		return "", err
	}
	again, err := read("New password again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("jellyfish: rotate: the two new passwords differ")
	}
	return pw, nil
}

// rotate moves the account to new keys (account.Rotation): it creates the
// new account under the new password, copies every file into it (each
// downloaded and uploaded again under the new keys), checks that both list
// the same files with the same sizes and hashes, retires the old
// password and recovery key, and sets the remote's password to the new
// one. Interrupted, it leaves the old account working, and run again with
// the same new password it resumes.
func (f *Fs) rotate(ctx context.Context, opt map[string]string) (any, error) {
	s := f.s
	if f.m == nil {
		return nil, errors.New("jellyfish: rotate: this remote was opened without its config")
	}
	newPw, err := rotationPassword(opt)
	if err != nil {
		return nil, err
	}
	if err := s.flush(ctx); err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: store this device's pending changes first: %w", err)
	}
	statePath := filepath.Join(s.slotDir, rotateFile)
	var prev rotateState
	if b, err := os.ReadFile(statePath); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	resume := func(a *account.Account) bool { return prev.NewAccount != "" && a.ID().String() == prev.NewAccount }
	r, rk, err := s.mgr.BeginRotation(ctx, s.acct.User, f.opt.Password, newPw, resume)
	if r == nil {
		return nil, fmt.Errorf("jellyfish: rotate: %w", err)
	}
	var warnings []string
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	b, _ := json.Marshal(rotateState{NewAccount: r.New.ID().String()})
	if err := atomicfile.Write(statePath, b, 0o600); err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: %w", err)
	}
	fs.Logf(f, "rotating account %s to new keys: account %s", r.Old.ID(), r.New.ID())

	// Both accounts whole, whatever root this remote was opened at.
	src, err := NewFsAt(ctx, f.name, "", f.m, s.now)
	if err != nil {
		return nil, err
	}
	dst, err := NewFsAt(ctx, f.name+"{rotated}", "", newPasswordMapper{Mapper: f.m, password: obscure.MustObscure(newPw)}, s.now)
	if err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: open the new account: %w", err)
	}
	if err := sync.CopyDir(ctx, dst, src, true); err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: copy into the new account (the old one is unchanged; run rotate again with the same new password to resume): %w", err)
	}
	ndst := dst.(*Fs)
	if err := ndst.s.flush(ctx); err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: store the new account's file list: %w", err)
	}
	files, size, err := sameFiles(ctx, src, dst)
	if err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: the old account is unchanged: %w", err)
	}
	if err := s.mgr.FinishRotation(ctx, r); err != nil {
		return nil, fmt.Errorf("jellyfish: rotate: every file is in the new account, but: %w (run rotate again with the same new password)", err)
	}
	f.m.Set("password", obscure.MustObscure(newPw))
	_ = os.Remove(statePath)
	out := map[string]any{
		"old_account": r.Old.ID().String(),
		"new_account": r.New.ID().String(),
		"files":       files,
		"bytes":       size,
		"next": []string{
			"this remote's password is now the new one (where it came from the config file)",
			"on every other device, set the new password: jellyfish config update REMOTE password NEW --obscure",
			"a node linked to the old account: log in again (jellyfish account login) and restart it with the new key file",
			"the old account's shards lapse when their leases end; whoever holds its keys can still read them until then",
		},
	}
	if rk != (account.RecoveryKey{}) {
		out["recovery_key"] = rk.String()
	}
	if len(warnings) > 0 {
		out["warnings"] = warnings
	}
	return out, nil
}

// sameFiles checks that dst lists exactly src's files, with the same
// sizes and hashes, and returns their count and total size.
func sameFiles(ctx context.Context, src, dst fs.Fs) (int, int64, error) {
	type info struct {
		size int64
		hash string
	}
	list := func(f fs.Fs) (map[string]info, error) {
		out := map[string]info{}
		err := walk.ListR(ctx, f, "", true, -1, walk.ListObjects, func(entries fs.DirEntries) error {
			for _, e := range entries {
				o, ok := e.(fs.Object)
				if !ok {
					continue
				}
				h, err := o.Hash(ctx, hash.BLAKE3)
				if err != nil {
					return err
				}
				out[o.Remote()] = info{o.Size(), h}
			}
			return nil
		})
		return out, err
	}
	a, err := list(src)
	if err != nil {
		return 0, 0, err
	}
	b, err := list(dst)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for p, i := range a {
		if j, ok := b[p]; !ok || j != i {
			return 0, 0, fmt.Errorf("%s was not copied intact", p)
		}
		total += i.size
	}
	if len(b) != len(a) {
		return 0, 0, fmt.Errorf("the new account lists %d files, the old %d", len(b), len(a))
	}
	return len(a), total, nil
}
