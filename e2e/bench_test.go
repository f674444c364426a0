package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnpurge/cdnpurge/fleet"
	"github.com/cdnpurge/cdnpurge/fleet/fleettest"
)

const wrkScript = `
wrk.method = "PURGE"
wrk.headers["Host"] = "bench.example"
wrk.headers["Purge-Token"] = os.getenv("PURGE_TOKEN")
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/episode/" .. n)
end
`

// BenchmarkPurgeVsWrk compares, against the same 3 real varnishd instances
// and in the same rounds, the PURGE rate of wrk (one wrk per instance, 1
// thread, 16 connections) with cdnpurge purging 10,000 URLs on every
// instance with its default settings, through the CLI process (start,
// discovery and report included) and through the library. Each round runs
// the three back to back, so that they share the machine's weather; the
// ratios are of the totals. It also reports the CLI's CPU time (user +
// system) per purge.
func BenchmarkPurgeVsWrk(b *testing.B) {
	fleettest.NeedVarnishd(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed (apt-get install -y wrk)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	f, err := fleet.Start(ctx, fleet.Options{N: 3, Mode: fleet.ModeLoopback, Token: token})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	dir := b.TempDir()
	script := filepath.Join(dir, "purge.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		b.Fatal(err)
	}
	const nURLs = 10000
	var raw []string
	for i := 0; i < nURLs; i++ {
		raw = append(raw, fmt.Sprintf("https://bench.example/episode/%d", i))
	}
	file := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(file, []byte(strings.Join(raw, "\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "cdnpurge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	j := f.Job()
	j.URLs, j.Token = raw, token
	purges := float64(nURLs * len(f.Members))
	var wrkRate, cliTime, libTime, cliCPU float64
	for b.Loop() {
		wrkRate += wrkRPS(b, f, script, 2*time.Second)

		cmd := exec.Command(bin, append([]string{"purge", "--urls-file", file, "--format", "json"}, f.Args()...)...)
		cmd.Env = append(os.Environ(), "PURGE_TOKEN="+token)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v\n%s", err, stderr.String())
		}
		cliTime += time.Since(start).Seconds()
		cliCPU += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()

		start = time.Now()
		out, err := j.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := out.Err(); err != nil {
			b.Fatalf("%v: %s", err, out.Purge.Summary())
		}
		libTime += time.Since(start).Seconds()
	}
	n := float64(b.N)
	wrk, cli, lib := wrkRate/n, purges*n/cliTime, purges*n/libTime
	b.ReportMetric(wrk, "wrk-purges/s")
	b.ReportMetric(cli, "cli-purges/s")
	b.ReportMetric(lib, "library-purges/s")
	b.ReportMetric(cli/wrk, "cli/wrk")
	b.ReportMetric(lib/wrk, "library/wrk")
	b.ReportMetric(cliCPU*1e6/(purges*n), "cli-cpu-us/purge")
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrkRPS runs one wrk per instance at once and returns their summed rate.
func wrkRPS(b *testing.B, f *fleet.Fleet, script string, d time.Duration) float64 {
	var mu sync.Mutex
	var sum float64
	var wg sync.WaitGroup
	for _, m := range f.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("wrk", "-t1", "-c16", "-d"+d.String(), "-s", script, "http://"+m.Instance.String()+"/")
			cmd.Env = append(os.Environ(), "PURGE_TOKEN="+token)
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Errorf("wrk: %v\n%s", err, out)
				return
			}
			if strings.Contains(string(out), "Non-2xx") {
				b.Errorf("wrk got errors:\n%s", out)
			}
			mm := rpsRE.FindStringSubmatch(string(out))
			if mm == nil {
				b.Errorf("wrk output has no Requests/sec:\n%s", out)
				return
			}
			v, _ := strconv.ParseFloat(mm[1], 64)
			mu.Lock()
			sum += v
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sum
}
