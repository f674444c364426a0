// Command fleet-containers prints how the Dagger module's containers run
// (package fleet/containers), for .ci/run, which imitates them where no
// engine runs, and checks what they printed:
//
//	fleet-containers [-instances N] args WHAT   the command of WHAT, NUL-separated
//	fleet-containers [-instances N] env WHAT    its environment as NAME=VALUE, NUL-separated
//	                                            (the purge token is the e2e function's)
//	fleet-containers vcl I                      the VCL of the e2e function's I-th Varnish service
//	fleet-containers [-instances N] check-e2e   reads the e2e command's output on stdin; fails
//	                                            unless every scenario passed and none skipped
//	fleet-containers netns                      exits 0 when this process can create network
//	                                            namespaces, else says why and exits 1
//
// WHAT is origin, varnish (every Varnish service of the e2e function runs
// the same command), e2e, test-setup or test.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/containers"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-containers:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("fleet-containers", flag.ContinueOnError)
	n := fs.Int("instances", 3, "the e2e function's Varnish services")
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		return fmt.Errorf("usage: fleet-containers [-instances N] args|env|vcl|check-e2e|netns [WHAT]")
	}
	switch cmd := args[0]; cmd {
	case "args", "env":
		if len(args) != 2 {
			return fmt.Errorf("usage: fleet-containers %s origin|varnish|e2e|test-setup|test", cmd)
		}
		e, err := command(args[1], *n)
		if err != nil {
			return err
		}
		list := e.Args
		if cmd == "env" {
			list = e.Environ(containers.E2EToken)
		}
		for _, s := range list {
			if _, err := fmt.Fprint(stdout, s, "\x00"); err != nil {
				return err
			}
		}
		return nil
	case "vcl":
		i := 0
		if len(args) == 2 {
			i, _ = strconv.Atoi(args[1])
		}
		if i < 1 || i > containers.MaxInstances {
			return fmt.Errorf("usage: fleet-containers vcl I (1 to %d)", containers.MaxInstances)
		}
		vcl, err := containers.E2EVarnish(i).VCL()
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, vcl)
		return err
	case "check-e2e":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		if err := containers.CheckE2E(*n, string(b)); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "e2e: all %d scenarios passed, none skipped\n", len(containers.E2EScenarios(*n)))
		return err
	case "netns":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return fleet.NetnsAvailable(ctx)
	default:
		return fmt.Errorf("unknown command %q: args, env, vcl, check-e2e or netns", cmd)
	}
}

// command is WHAT's command.
func command(what string, n int) (containers.Exec, error) {
	switch what {
	case "origin":
		return containers.Origin(), nil
	case "varnish":
		return containers.E2EVarnish(1).Exec(), nil
	case "e2e":
		return containers.E2E(n, time.Now().UTC().Format(time.RFC3339Nano))
	case "test-setup":
		return containers.TestSetup(), nil
	case "test":
		return containers.Test(), nil
	}
	return containers.Exec{}, fmt.Errorf("%q: give origin, varnish, e2e, test-setup or test", strings.TrimSpace(what))
}
