package jfcmd

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
)

// Environment variables holding the passphrase of an account key file
// for non-interactive use: the node's, login's and devices'
// (JELLYFISH_ACCOUNT_PASSPHRASE), and the new one of `account
// passphrase`.
const (
	envAccountPassphrase    = "JELLYFISH_ACCOUNT_PASSPHRASE"
	envNewAccountPassphrase = "JELLYFISH_NEW_ACCOUNT_PASSPHRASE"
)

// readPassphraseFile returns the first line of path, which must not be
// readable by others: it opens the account key file.
func readPassphraseFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s holds the passphrase of an account key file and is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	p, _, _ := strings.Cut(string(b), "\n")
	p = strings.TrimSuffix(p, "\r")
	if p == "" {
		return "", fmt.Errorf("passphrase file %s: first line is empty", path)
	}
	return p, nil
}

// readPassphrase reads a key file's passphrase from file (see
// readPassphraseFile), else from the environment variable env, else from
// the terminal without echo (twice when confirm is set).
func readPassphrase(cmd *cobra.Command, file, env, prompt string, confirm bool) (string, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	return readSecret(cmd, "passphrase", "", env, prompt, confirm)
}

// passphraseOptions are the flags of `account passphrase`.
type passphraseOptions struct {
	newFile string
	remove  bool
}

func init() {
	var po passphraseOptions
	c := &cobra.Command{
		Use:   "passphrase [FILE]",
		Short: "Add, change or remove the passphrase that encrypts an account key file",
		Long: `passphrase seals the keys of an account key file (the device cache that
login writes, or FILE, such as the one a node's --account-config names) under
a passphrase, changes it, or with --remove writes them in the clear again.
It works on the file alone: nothing is sent to the network.

The current passphrase is read from --passphrase-file, else
JELLYFISH_ACCOUNT_PASSPHRASE, else the terminal; the new one from
--new-passphrase-file, else JELLYFISH_NEW_ACCOUNT_PASSPHRASE, else the terminal
(twice). Passphrase files must not be readable by others.

The passphrase protects a copy of the file at rest: whoever copies it must
guess the passphrase at Argon2id's pace (64 MiB and 3 passes a guess). It does
not protect the keys in the memory of a running node or command, and a
passphrase file on the same disk as the key file protects little: whoever can
read both holds the account.`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			o, err := accountOptionsFrom(cmd)
			if err != nil {
				return err
			}
			return accountPassphrase(cmd, o, po, args)
		}),
	}
	c.Flags().String("passphrase-file", "", "read the current passphrase from the first line of this file (mode 0600)")
	c.Flags().StringVar(&po.newFile, "new-passphrase-file", "", "read the new passphrase from the first line of this file (mode 0600)")
	c.Flags().BoolVar(&po.remove, "remove", false, "remove the passphrase: write the keys in the clear again")
	subcommands["account"] = append(subcommands["account"], c)
}

func accountPassphrase(cmd *cobra.Command, o *accountOptions, po passphraseOptions, args []string) error {
	var path string
	if len(args) == 1 {
		p, err := expandHome(args[0])
		if err != nil {
			return err
		}
		path = p
	} else {
		user, err := o.cachedUser()
		if err != nil {
			return err
		}
		if path, err = cachePath(o.configDir, user); err != nil {
			return err
		}
	}
	h, err := loadDeviceHeader(path)
	if err != nil {
		return err
	}
	if h.Version < keyfile.Version {
		return fmt.Errorf("%s is of an older format: run `jellyfish account login` again first", path)
	}
	if po.remove && !h.Encrypted {
		return fmt.Errorf("%s has no passphrase; nothing was changed", path)
	}
	f, err := unlockDeviceCache(cmd, path, o.passphraseFile)
	if err != nil {
		return err
	}
	var newPass string
	if !po.remove {
		if newPass, err = readPassphrase(cmd, po.newFile, envNewAccountPassphrase, "New passphrase", true); err != nil {
			return err
		}
	}
	if err := f.SetPassphrase(newPass); err != nil {
		return err
	}
	if err := rewriteKeyFile(f, path); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	switch {
	case po.remove:
		fmt.Fprintf(w, "passphrase of %s removed: its keys are in the clear again, protected only by the file's mode\n", path)
		fmt.Fprintf(w, "a node started with --account-passphrase-file or %s refuses this file until they are dropped\n", envAccountPassphrase)
	case h.Encrypted:
		fmt.Fprintf(w, "passphrase of %s changed\n", path)
	default:
		fmt.Fprintf(w, "%s is now encrypted under the passphrase; `jellyfish node --account-config` asks for it (--account-passphrase-file, %s or the terminal)\n", path, envAccountPassphrase)
	}
	return nil
}

// loginPassphrase returns the passphrase login seals the new cache under,
// or "" for none: the previous cache's, which the passphrase given must
// open (so a node's passphrase file stays right), when it had one; else
// one read with confirmation when --passphrase or --passphrase-file asks
// for one.
func loginPassphrase(cmd *cobra.Command, o *accountOptions, path string, prev *keyfile.Header) (string, error) {
	if prev != nil && prev.Encrypted {
		pass, err := readPassphrase(cmd, o.passphraseFile, envAccountPassphrase, "Passphrase of "+path, false)
		if err != nil {
			return "", fmt.Errorf("%w (the device cache %s is encrypted, and login keeps it so)", err, path)
		}
		if _, err := openDeviceCache(path, pass); err != nil {
			if errors.Is(err, errBadPassphrase) {
				return "", fmt.Errorf("%w; `jellyfish account passphrase` changes it; if it is lost, remove the file and log in again (this device then joins the account as a new device)", err)
			}
			return "", err
		}
		return pass, nil
	}
	if !o.passphrase && o.passphraseFile == "" {
		return "", nil
	}
	return readPassphrase(cmd, o.passphraseFile, envAccountPassphrase, "Passphrase for the device cache", true)
}

// errNodePassphrase is returned by the node when its key file is
// encrypted and no passphrase source is available.
var errNodePassphrase = errors.New("give its passphrase with --account-passphrase-file FILE (mode 0600) or the environment variable " + envAccountPassphrase + ", or start the node on a terminal to be asked for it")

// loadNodeKeyFile opens the node's --account-config: a file without a
// passphrase as it is (refused when a passphrase is given anyway: the
// file is not the one the operator encrypted); an encrypted one with the
// passphrase of passphraseFile, else JELLYFISH_ACCOUNT_PASSPHRASE, else
// the terminal.
func loadNodeKeyFile(cmd *cobra.Command, path, passphraseFile string) (*keyfile.File, error) {
	h, err := loadDeviceHeader(path)
	if err != nil {
		return nil, err
	}
	var pass, source string
	switch {
	case passphraseFile != "":
		if pass, err = readPassphraseFile(passphraseFile); err != nil {
			return nil, err
		}
		source = "--account-passphrase-file"
	case os.Getenv(envAccountPassphrase) != "":
		pass, source = os.Getenv(envAccountPassphrase), envAccountPassphrase
	}
	if !h.Encrypted {
		if source != "" {
			return nil, fmt.Errorf("%s is not encrypted, yet a passphrase was given (%s): encrypt it with `jellyfish account passphrase %s`, or drop the passphrase", path, source, path)
		}
		return openDeviceCache(path, "")
	}
	if source == "" {
		if !isTerminal(os.Stdin) {
			return nil, fmt.Errorf("the account key file %s is encrypted: %w", path, errNodePassphrase)
		}
		if pass, err = promptPassword(cmd.ErrOrStderr(), "Passphrase of "+path+": "); err != nil {
			return nil, err
		}
		if pass == "" {
			return nil, errors.New("empty passphrase")
		}
	}
	return openDeviceCache(path, pass)
}
