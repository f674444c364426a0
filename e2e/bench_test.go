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
	f, dir, script := wrkFleet(b, "purge.lua", wrkScript)
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

// wrkPipelineScript sends 64 PURGEs per batch, each for its own URL, in the
// style of wrk's own pipeline.lua (which returns one string holding every
// request of a batch from request()); wrk reads the 64 answers, then asks
// for the next batch.
const wrkPipelineScript = `
local depth = 64
local n = 0
local headers = {["Host"] = "bench.example", ["Purge-Token"] = os.getenv("PURGE_TOKEN")}
local batch = {}
request = function()
  for i = 1, depth do
    n = n + 1
    batch[i] = wrk.format("PURGE", "/episode/" .. n, headers)
  end
  return table.concat(batch)
end
`

// BenchmarkPurgeVsWrkPipelined is the contender of issue 16: wrk with a Lua
// script pipelining 64 PURGEs per batch on 4 connections per instance (one
// wrk per instance, 1 thread), against the CLI with its default flags
// purging 100,000 URLs on each of the same 3 varnishd, its JSON report
// written to a file. Both run back to back in each round, so that they
// share the machine's weather. CPU per purge is measured the same way for
// both: user + system time of the processes (wrk's three, the CLI's one),
// from the kernel's accounting of each child, divided by the purges each
// sent. On loopback a sender's system time includes the receiver's TCP
// work: both pay it alike.
func BenchmarkPurgeVsWrkPipelined(b *testing.B) {
	f, dir, script := wrkFleet(b, "pipeline.lua", wrkPipelineScript)
	const nURLs = 100_000
	var raw strings.Builder
	for i := range nURLs {
		fmt.Fprintf(&raw, "https://bench.example/episode/%d\n", i)
	}
	file := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(file, []byte(raw.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "cdnpurge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cdnpurge/cdnpurge/cmd/cdnpurge").CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	report := filepath.Join(dir, "report.json")
	purges := float64(nURLs * len(f.Members))
	// cli runs a cdnpurge binary once and returns its seconds and CPU seconds.
	cli := func(bin string) (secs, cpu float64) {
		out, err := os.Create(report)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		cmd := exec.Command(bin, append([]string{"purge", "--urls-file", file, "--format", "json"}, f.Args()...)...)
		cmd.Env = append(os.Environ(), "PURGE_TOKEN="+token)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = out, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%s", bin, err, stderr.String())
		}
		return time.Since(start).Seconds(), (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	// CDNPURGE_BENCH_BASELINE names another cdnpurge binary (a build of
	// main, say) to run in the same rounds.
	base := os.Getenv("CDNPURGE_BENCH_BASELINE")
	var wrkReqs, wrkTime, wrkCPU, cliTime, cliCPU, baseTime, baseCPU float64
	for b.Loop() {
		r, el, cpu := wrkPipelined(b, f, script, 3*time.Second)
		wrkReqs, wrkTime, wrkCPU = wrkReqs+r, wrkTime+el, wrkCPU+cpu
		el, cpu = cli(bin)
		cliTime, cliCPU = cliTime+el, cliCPU+cpu
		if base != "" {
			el, cpu = cli(base)
			baseTime, baseCPU = baseTime+el, baseCPU+cpu
		}
	}
	n := float64(b.N)
	wrk, rate := wrkReqs/wrkTime, purges*n/cliTime
	wrkUS, cliUS := wrkCPU*1e6/wrkReqs, cliCPU*1e6/(purges*n)
	b.ReportMetric(wrk, "wrk-pipelined-purges/s")
	b.ReportMetric(rate, "cli-purges/s")
	b.ReportMetric(rate/wrk, "cli/wrk-pipelined")
	b.ReportMetric(wrkUS, "wrk-cpu-us/purge")
	b.ReportMetric(cliUS, "cli-cpu-us/purge")
	b.ReportMetric(cliUS/wrkUS, "cli-cpu/wrk-cpu")
	if base != "" {
		b.ReportMetric(purges*n/baseTime, "baseline-purges/s")
		b.ReportMetric(baseCPU*1e6/(purges*n), "baseline-cpu-us/purge")
	}
}

var wrkCountRE = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(ms|s|m)`)

// wrkPipelined runs one pipelining wrk per instance at once, 4 connections
// each, and returns the purges answered, the seconds they took (the longest
// wrk's own measure) and the CPU seconds the wrk processes used.
func wrkPipelined(b *testing.B, f *fleet.Fleet, script string, d time.Duration) (reqs, secs, cpu float64) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range f.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("wrk", "-t1", "-c4", "-d"+d.String(), "-s", script, "http://"+m.Instance.String()+"/")
			cmd.Env = append(os.Environ(), "PURGE_TOKEN="+token)
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Errorf("wrk: %v\n%s", err, out)
				return
			}
			if strings.Contains(string(out), "Non-2xx") {
				b.Errorf("wrk got errors:\n%s", out)
			}
			mm := wrkCountRE.FindStringSubmatch(string(out))
			if mm == nil {
				b.Errorf("wrk output has no request count:\n%s", out)
				return
			}
			n, _ := strconv.ParseFloat(mm[1], 64)
			t, _ := strconv.ParseFloat(mm[2], 64)
			switch mm[3] {
			case "ms":
				t /= 1000
			case "m":
				t *= 60
			}
			mu.Lock()
			reqs += n
			secs = max(secs, t)
			cpu += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
			mu.Unlock()
		}()
	}
	wg.Wait()
	return reqs, secs, cpu
}

// wrkFleet starts the 3 varnishd both contests run against (skipping
// without varnishd or wrk) and writes wrk's Lua script into the
// benchmark's directory, which it returns with the script's path.
func wrkFleet(b *testing.B, name, lua string) (f *fleet.Fleet, dir, script string) {
	b.Helper()
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
	dir = b.TempDir()
	script = filepath.Join(dir, name)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	return f, dir, script
}
