// Command jellyfish is rclone's command line with the Jellyfish backend and
// Jellyfish's own commands (node, testnet, account, …) built in.
package main

import (
	"github.com/rclone/rclone/cmd"

	_ "github.com/rclone/rclone/backend/local"
	_ "github.com/rclone/rclone/cmd/all"

	_ "github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/cmd/jellyfish/internal/jfcmd"
)

func main() {
	jfcmd.Register(cmd.Root)
	cmd.Main()
}
