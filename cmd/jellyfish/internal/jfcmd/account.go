package jfcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// Environment variables holding passwords for non-interactive use.
const (
	envPassword    = "JELLYFISH_PASSWORD"
	envNewPassword = "JELLYFISH_NEW_PASSWORD"
	envRecoveryKey = "JELLYFISH_RECOVERY_KEY"
)

// accountTimeout bounds one account command's network work.
const accountTimeout = 2 * time.Minute

func init() {
	userMessages = append(userMessages,
		// Before ErrBadLogin, which it also matches.
		userMessage{account.ErrExpiredLogin, strings.TrimPrefix(account.ErrExpiredLogin.Error(), "account: ")},
		userMessage{account.ErrBadLogin, "wrong username or password (or no such account, or one made by a newer version of Jellyfish)"},
		userMessage{account.ErrRotated, "this password opened an account whose keys were rotated (`jellyfish backend rotate`): its files now live in a new account under the new password"},
		// Before ErrUnreachable, which it also matches.
		userMessage{client.ErrTooFewAnswers, "too few of the network's nodes answered to tell whether a record is there (that was not taken as \"absent\"): try again"},
		userMessage{account.ErrUnreachable, "the Jellyfish network cannot be reached: check --bootstrap / --bootstrap-file and that those nodes run"},
		userMessage{account.ErrExists, "an account already exists for this username and password"},
		userMessage{account.ErrExpiredAccount, strings.TrimPrefix(account.ErrExpiredAccount.Error(), "account: ")},
		userMessage{account.ErrBadRecoveryKey, "wrong username or recovery key (or this account has no recovery key, or its records expired)"},
		userMessage{account.ErrRecoveryKeyReplaced, "this recovery key was replaced by a newer one (`jellyfish account recovery-key`) and no longer works"},
		userMessage{account.ErrRecoveryKeyFormat, "that is not a recovery key: a recovery key is 40 letters and digits in eight groups of five; check for a typo"},
	)
}

// addInsecureKDFFlag adds the hidden --insecure-test-kdf flag.
func addInsecureKDFFlag(c *cobra.Command, v *bool) {
	c.Flags().BoolVar(v, "insecure-test-kdf", false, "TESTS ONLY: derive keys with a trivially cheap Argon2id cost; such accounts can be cracked instantly and only other test-KDF commands open them")
	_ = c.Flags().MarkHidden("insecure-test-kdf")
}

func managerOptions(testKDF bool) []account.Option {
	if testKDF {
		return []account.Option{account.InsecureTestKDF()}
	}
	return nil
}

// accountOptions are the flags shared by the account subcommands.
type accountOptions struct {
	boot            bootstrapFlags
	username        string
	passwordFile    string
	newPasswordFile string
	recoveryFile    string
	configDir       string
	deviceName      string
	testKDF         bool
	// passphrase and passphraseFile: login seals the device cache under
	// a passphrase; devices reads it.
	passphrase     bool
	passphraseFile string
}

func init() {
	var o accountOptions
	root := &cobra.Command{
		Use:   "account",
		Short: "Create, log in to and inspect Jellyfish accounts",
		Long: `An account is a username and a password; nothing else needs remembering.

Passwords are read from the terminal without echo, or from --password-file, or
from the environment variable JELLYFISH_PASSWORD (JELLYFISH_NEW_PASSWORD for
the new password of passwd and recover). There is no password flag: command
lines are visible to every user of the machine. The same holds for recovery
keys (--recovery-key-file, JELLYFISH_RECOVERY_KEY).

create prints the account's recovery key once. With the password or the
recovery key the account can always be opened; without both, it and its files
are gone for good.

Each command joins the network for its own duration as a client node, through
--bootstrap or --bootstrap-file (login remembers them for later commands).

login keeps the account's keys on this device, in the device cache. With
--passphrase (or --passphrase-file) it seals them under a passphrase: a copy
of the file is then useless without it. passphrase adds, changes or removes
it later. Commands that need the keys (devices, and jellyfish node
--account-config) then read it from --passphrase-file (--account-passphrase-file
for the node), else JELLYFISH_ACCOUNT_PASSPHRASE, else the terminal.`,
	}
	root.PersistentFlags().StringArrayVar(&o.boot.addrs, "bootstrap", nil, "multiaddr of a network node, ending in /p2p/<peer ID> (repeatable)")
	root.PersistentFlags().StringVar(&o.boot.file, "bootstrap-file", "", "file with one bootstrap multiaddr per line")
	root.PersistentFlags().StringVar(&o.username, "username", "", "account username")
	root.PersistentFlags().StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of this file")
	root.PersistentFlags().StringVar(&o.configDir, "config-dir", defaultConfigDir, "folder of the device cache (accounts/<username>.json)")
	root.PersistentFlags().BoolVar(&o.testKDF, "insecure-test-kdf", false, "TESTS ONLY: trivially cheap key derivation; such accounts can be cracked instantly")
	_ = root.PersistentFlags().MarkHidden("insecure-test-kdf")

	sub := func(use, short string, run func(context.Context, *cobra.Command, *accountOptions) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: runE(func(cmd *cobra.Command, _ []string) error {
				ctx, stop := signalContext(cmd.Context())
				defer stop()
				return run(ctx, cmd, &o)
			}),
		}
	}
	create := sub("create", "Create a new account on the network", accountCreate)
	login := sub("login", "Unlock an account and remember its keys on this device", accountLogin)
	login.Flags().StringVar(&o.deviceName, "device-name", "", "name of this device in the account record, which anyone can read (default: a label made from the device's random ID)")
	login.Flags().BoolVar(&o.passphrase, "passphrase", false, "seal the device cache's keys under a passphrase (asked twice on a terminal, or JELLYFISH_ACCOUNT_PASSPHRASE)")
	login.Flags().StringVar(&o.passphraseFile, "passphrase-file", "", "seal the device cache's keys under the passphrase on the first line of this file (mode 0600); implies --passphrase")
	passwd := sub("passwd", "Change an account's password (its keys and data stay the same)", accountPasswd)
	passwd.Flags().StringVar(&o.newPasswordFile, "new-password-file", "", "read the new password from the first line of this file")
	show := sub("show", "Show the account this device is logged in to: identity, nodes, devices", accountShow)
	recoveryKey := sub("recovery-key", "Make a new recovery key for the account this device is logged in to; the previous one stops working", accountRecoveryKey)
	recov := sub("recover", "Set a new password with the account's recovery key", accountRecover)
	recov.Flags().StringVar(&o.recoveryFile, "recovery-key-file", "", "read the recovery key from the first line of this file")
	recov.Flags().StringVar(&o.newPasswordFile, "new-password-file", "", "read the new password from the first line of this file")
	root.AddCommand(create, login, passwd, show, recoveryKey, recov)
	commands = append(commands, root)
}

// session is one account command's short-lived client node.
type session struct {
	c    *client.Client
	m    *account.Manager
	boot []ma.Multiaddr
	dir  string
}

// openSession joins the network with a client node in a temporary folder.
// Bootstrap addresses come from the flags, else from fallback (the device
// cache).
func openSession(ctx context.Context, o *accountOptions, fallback []string) (*session, error) {
	boot, err := o.boot.parse()
	if err != nil {
		return nil, err
	}
	if len(boot) == 0 && len(fallback) > 0 {
		if boot, err = parseMultiaddrs(fallback); err != nil {
			return nil, err
		}
	}
	if len(boot) == 0 {
		return nil, errors.New("no network to talk to: give --bootstrap or --bootstrap-file")
	}
	dir, err := os.MkdirTemp("", "jellyfish-client-")
	if err != nil {
		return nil, err
	}
	c, err := client.New(ctx, client.Config{DataDir: dir, Bootstrap: boot, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &session{c: c, m: account.NewManager(c.Records(), managerOptions(o.testKDF)...), boot: boot, dir: dir}, nil
}

func (s *session) close() error {
	err := s.c.Close()
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (o *accountOptions) user(cmd *cobra.Command) (account.Username, error) {
	name := o.username
	if name == "" && isTerminal(os.Stdin) {
		fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read username: %w", err)
		}
		name = strings.TrimSpace(line)
	}
	if name == "" {
		return "", errors.New("no username: give --username")
	}
	return account.NormalizeUsername(name)
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, accountTimeout)
}

func accountCreate(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.user(cmd)
	if err != nil {
		return err
	}
	pw, err := readPassword(cmd, o.passwordFile, envPassword, "Password", true)
	if err != nil {
		return err
	}
	if err := account.CheckPassword(user, pw); err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, nil)
	if err != nil {
		return err
	}
	defer s.close()
	a, rk, err := s.m.CreateWithRecovery(ctx, user, pw)
	if a == nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "created account %q\naccount id: %s\n", user, a.ID())
	if err != nil {
		// The account exists; only its recovery key is missing.
		fmt.Fprintf(w, "run `jellyfish account login` on each device that uses it\n")
		return err
	}
	printRecoveryKey(w, rk)
	fmt.Fprintf(w, "run `jellyfish account login` on each device that uses it\n")
	return nil
}

// printRecoveryKey shows a new recovery key, once, with what it is for.
func printRecoveryKey(w io.Writer, rk account.RecoveryKey) {
	fmt.Fprintf(w, "recovery key: %s\n", rk)
	fmt.Fprintln(w, "Write the recovery key down and keep it apart from your devices: it is shown only now.")
	fmt.Fprintln(w, "With it, `jellyfish account recover` sets a new password if you forget yours.")
	fmt.Fprintln(w, "Without the password and without the recovery key the account and its files are gone for good:")
	fmt.Fprintln(w, "nobody, not the network and not its operators, can open them.")
}

func accountRecoveryKey(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.cachedUser()
	if err != nil {
		return err
	}
	path, err := cachePath(o.configDir, user)
	if err != nil {
		return err
	}
	cache, err := loadDeviceHeader(path)
	if err != nil {
		return err
	}
	pw, err := readPassword(cmd, o.passwordFile, envPassword, "Password", false)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, cache.Bootstrap)
	if err != nil {
		return err
	}
	defer s.close()
	a, err := s.m.Login(ctx, user, pw)
	if err != nil {
		return err
	}
	rk, err := s.m.ReplaceRecoveryKey(ctx, a)
	if err != nil && !errors.Is(err, account.ErrOldRecoveryKeyLive) {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "new recovery key of %q\n", user)
	printRecoveryKey(w, rk)
	fmt.Fprintln(w, "The previous recovery key no longer works.")
	if err != nil {
		// The new key is in force; only the old record lingers.
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", strings.TrimPrefix(err.Error(), "account: "))
	}
	return nil
}

func accountRecover(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.user(cmd)
	if err != nil {
		return err
	}
	text, err := readSecret(cmd, "recovery key", o.recoveryFile, envRecoveryKey, "Recovery key", false)
	if err != nil {
		return err
	}
	rk, err := account.ParseRecoveryKey(text)
	if err != nil {
		return err
	}
	newPw, err := readPassword(cmd, o.newPasswordFile, envNewPassword, "New password", true)
	if err != nil {
		return err
	}
	if err := account.CheckPassword(user, newPw); err != nil {
		return err
	}
	fallback := cachedBootstrap(o, user)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, fallback)
	if err != nil {
		return err
	}
	defer s.close()
	a, err := s.m.Recover(ctx, user, rk, newPw)
	if a == nil {
		if errors.Is(err, account.ErrExpiredAccount) {
			return errors.New("the new password opened another account before, whose records expired from the network; choose another new password")
		}
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "new password of %q set with its recovery key (account id %s); the old password no longer works\n"+
		"devices already logged in keep working; the recovery key stays valid (`jellyfish account recovery-key` replaces it)\n", user, a.ID())
	return err
}

func accountLogin(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.user(cmd)
	if err != nil {
		return err
	}
	pw, err := readPassword(cmd, o.passwordFile, envPassword, "Password", false)
	if err != nil {
		return err
	}
	path, err := cachePath(o.configDir, user)
	if err != nil {
		return err
	}
	prev, _ := loadDeviceHeader(path)
	var fallback []string
	if prev != nil {
		fallback = prev.Bootstrap
	}
	pass, err := loginPassphrase(cmd, o, path, prev)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, fallback)
	if err != nil {
		return err
	}
	defer s.close()
	a, err := s.m.Login(ctx, user, pw)
	if err != nil {
		return err
	}
	name := o.deviceName
	if len(name) > 64 {
		name = name[:64]
	}
	cache, err := newDeviceCache(a, pw, o.testKDF, prev, name, addrStrings(s.boot))
	if err != nil {
		return err
	}
	if err := cache.SetPassphrase(pass); err != nil {
		return err
	}
	// Name this device in the account record, so `show` lists it.
	if err := addDevice(ctx, s.m, a, cache); err != nil {
		return err
	}
	if err := saveDeviceCache(cache, path); err != nil {
		return err
	}
	encrypted := ""
	if cache.Encrypted() {
		encrypted = " (encrypted under the passphrase)"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "logged in as %q (account id %s)\ndevice cache: %s%s\n", user, a.ID(), path, encrypted)
	return nil
}

// addDevice lists the cached device in the account record if it is not.
func addDevice(ctx context.Context, m *account.Manager, a *account.Account, c *keyfile.File) error {
	id := c.Device.ID
	pub, err := m.Lookup(ctx, a.ID())
	if err != nil {
		return fmt.Errorf("read account record: %w", err)
	}
	if pub.Has(id) {
		return nil
	}
	if _, err := m.Update(ctx, a, account.AddDevice(*c.Device)); err != nil {
		if errors.Is(err, account.ErrDevicesFull) {
			return fmt.Errorf("%w: remove one with `jellyfish account devices --remove ID`", err)
		}
		return fmt.Errorf("add this device to the account record: %w", err)
	}
	return nil
}

func accountPasswd(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.user(cmd)
	if err != nil {
		return err
	}
	oldPw, err := readPassword(cmd, o.passwordFile, envPassword, "Current password", false)
	if err != nil {
		return err
	}
	newPw, err := readPassword(cmd, o.newPasswordFile, envNewPassword, "New password", true)
	if err != nil {
		return err
	}
	if err := account.CheckPassword(user, newPw); err != nil {
		return err
	}
	fallback := cachedBootstrap(o, user)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, fallback)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.m.ChangePassword(ctx, user, oldPw, newPw); err != nil {
		if errors.Is(err, account.ErrExpiredAccount) {
			return errors.New("the new password opened another account before, whose records expired from the network; choose another new password (the current one still works)")
		}
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "password of %q changed; its keys and data are unchanged\n", user)
	return nil
}

func accountShow(ctx context.Context, cmd *cobra.Command, o *accountOptions) error {
	user, err := o.cachedUser()
	if err != nil {
		return err
	}
	path, err := cachePath(o.configDir, user)
	if err != nil {
		return err
	}
	cache, err := loadDeviceHeader(path)
	if err != nil {
		return err
	}
	id := cache.AccountID
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, cache.Bootstrap)
	if err != nil {
		return err
	}
	defer s.close()
	pub, err := s.m.Lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("read account record: %w", err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "username:   %s\n", cache.Username)
	fmt.Fprintf(w, "account id: %s\n", id)
	fmt.Fprintf(w, "created:    %s\n", time.Unix(pub.Created, 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "nodes:      %d\n", len(pub.Nodes))
	for _, n := range pub.Nodes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprintf(w, "devices:    %d\n", len(pub.Devices))
	for _, d := range pub.Devices {
		this := ""
		if cache.Device != nil && d.ID == cache.Device.ID {
			this = "  (this device)"
		}
		fmt.Fprintf(w, "  %x  %s%s\n", d.ID[:], d.Name, this)
	}
	fmt.Fprintln(w, "allowance:  each provider computes it from the account's nodes as it measured them; `jellyfish status` asks them and shows what they let the account store")
	return nil
}

// cachedUser returns --username, or the only account cached on this
// device.
func (o *accountOptions) cachedUser() (account.Username, error) {
	if o.username != "" {
		return account.NormalizeUsername(o.username)
	}
	dir, err := accountsDir(o.configDir)
	if err != nil {
		return "", err
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "", errNoCache
	case 1:
		return account.NormalizeUsername(names[0])
	}
	return "", fmt.Errorf("several accounts on this device (%s): give --username", strings.Join(names, ", "))
}

// readPassword reads a password from file, else from the environment
// variable env, else from the terminal without echo (twice when confirm
// is set, failing on a mismatch). It never accepts an empty password.
func readPassword(cmd *cobra.Command, file, env, prompt string, confirm bool) (string, error) {
	return readSecret(cmd, "password", file, env, prompt, confirm)
}

// readSecret reads a secret (what: "password", "recovery key") as
// readPassword says.
func readSecret(cmd *cobra.Command, what, file, env, prompt string, confirm bool) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s file: %w", what, err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return "", fmt.Errorf("%s file %s: first line is empty", what, file)
		}
		return pw, nil
	}
	if pw := os.Getenv(env); pw != "" {
		return pw, nil
	}
	if !isTerminal(os.Stdin) {
		return "", fmt.Errorf("no %s: not on a terminal; set %s or use a %s file", what, env, what)
	}
	errw := cmd.ErrOrStderr()
	pw, err := promptPassword(errw, prompt+": ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", fmt.Errorf("empty %s", what)
	}
	if confirm {
		again, err := promptPassword(errw, "Repeat "+strings.ToLower(prompt[:1])+prompt[1:]+": ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", fmt.Errorf("the two %ss differ; nothing was changed", what)
		}
	}
	return pw, nil
}

func promptPassword(w io.Writer, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// cachedBootstrap returns the addresses the user's device cache last
// reached the network through (nil without one): a fallback when no
// bootstrap peers are given.
func cachedBootstrap(o *accountOptions, user account.Username) []string {
	path, err := cachePath(o.configDir, user)
	if err != nil {
		return nil
	}
	prev, err := loadDeviceHeader(path)
	if err != nil {
		return nil
	}
	return prev.Bootstrap
}
