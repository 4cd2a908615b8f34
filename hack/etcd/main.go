// Command etcd is etcd built from the etcd server module muster already
// depends on (go.etcd.io/etcd/server/v3/etcdmain), for tools that run etcd
// as a separate process, such as kube-scheduler's scheduler_perf suite
// (test/bench/schedperf). `make bin/etcd` builds it; nothing is downloaded.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
