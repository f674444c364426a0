// Command cdnpurge purges URLs from every instance of a self-hosted cache
// fleet and verifies the result. Run 'cdnpurge --help' for usage.
package main

import (
	"context"
	"os"

	"github.com/cdnpurge/cdnpurge/cmd/cdnpurge/internal/cli"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
