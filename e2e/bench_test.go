package e2e

import (
	"context"
	"fmt"
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
	"github.com/cdnpurge/cdnpurge/purge"
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

// BenchmarkPurgeVsWrk compares, against the same 3 real varnishd instances,
// the PURGE throughput of wrk (one wrk per instance, 8 connections each, as
// cdnpurge's default per-instance limit) with cdnpurge purging 10,000 URLs
// on every instance, through the library and through the CLI process.
func BenchmarkPurgeVsWrk(b *testing.B) {
	fleettest.NeedVarnishd(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed (apt-get install -y wrk)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	f, err := fleet.Start(ctx, fleet.Options{N: 3, Token: token})
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
	b.Run("wrk", func(b *testing.B) {
		var total float64
		for i := 0; i < b.N; i++ {
			total += wrkRPS(b, f, script, 3*time.Second)
		}
		b.ReportMetric(total/float64(b.N), "purges/s")
	})
	b.Run("library", func(b *testing.B) {
		var in []string
		for _, m := range f.Instances() {
			in = append(in, m.String())
		}
		j := purge.Job{Instances: in, URLs: raw, Token: token}
		start := time.Now()
		for i := 0; i < b.N; i++ {
			out, err := j.Run(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if err := out.Err(); err != nil {
				b.Fatalf("%v: %s", err, out.Purge.Summary())
			}
		}
		b.ReportMetric(float64(nURLs*len(in)*b.N)/time.Since(start).Seconds(), "purges/s")
	})
	b.Run("cli", func(b *testing.B) {
		bin := filepath.Join(dir, "cdnpurge")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		start := time.Now()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(bin, append([]string{"purge", "--urls-file", file, "--format", "json"}, f.Args()...)...)
			cmd.Env = append(os.Environ(), "PURGE_TOKEN="+token)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out[:min(len(out), 2000)])
			}
		}
		b.ReportMetric(float64(nURLs*len(f.Members)*b.N)/time.Since(start).Seconds(), "purges/s")
	})
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
			cmd := exec.Command("wrk", "-t1", "-c8", "-d"+d.String(), "-s", script, "http://"+m.Instance.String()+"/")
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
