// Command muster is muster's CLI for admins and newcomers: `muster sandbox`
// runs the whole scheduler on one machine with nothing installed.
package main

import (
	"os"

	"muster.dev/muster/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
