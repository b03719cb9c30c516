// Package jfcmd holds Jellyfish's own subcommands of the jellyfish binary.
package jfcmd

import "github.com/spf13/cobra"

// Register adds Jellyfish's commands to rclone's root command and names the
// binary.
func Register(root *cobra.Command) {
	root.Use = "jellyfish"
	root.Short = "Jellyfish: peer-to-peer personal storage, with rclone's commands"
	for _, c := range commands {
		c.AddCommand(subcommands[c.Name()]...)
		root.AddCommand(c)
	}
}

// commands are the Jellyfish subcommands; each file of this package adds its
// own in an init function.
var commands []*cobra.Command

// subcommands are commands of this package added under another file's
// command, by that command's name ("account"); each file adds its own in an
// init function.
var subcommands = map[string][]*cobra.Command{}
