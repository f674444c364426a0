// Package bench holds the speed and memory benchmarks of the purge issue:
// the library, the CLI process and the bash one-liner baseline against the
// same loopback fleet in the same run. Run them with ci/bench.sh.
package bench
