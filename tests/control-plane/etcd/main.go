// etcd for the test suite's control plane: the server's own main, built in a
// module of ours because etcd's go.mod replaces its siblings with local paths.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
