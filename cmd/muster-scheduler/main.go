// Command muster-scheduler is kube-scheduler with muster's plugins: run it as
// a secondary scheduler and let pods opt in with schedulerName: muster.
package main

import (
	"os"

	"k8s.io/component-base/cli"

	"muster.dev/muster/pkg/scheduler"
)

func main() {
	os.Exit(cli.Run(scheduler.NewCommand()))
}
