package varnish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cdnpurge/cdnpurge/internal/syncbuf"
)

// compileTimeout bounds one run of the VCL compiler (about 0.3 s here).
const compileTimeout = time.Minute

// CompileError is a VCL that varnishd refused to compile.
type CompileError struct {
	// Output is what the VCL compiler said, e.g. "Could not find VMOD xkey"
	// with the line it points at.
	Output string
}

func (e *CompileError) Error() string {
	return "varnish: VCL does not compile:\n" + strings.TrimSpace(e.Output)
}

// Compile compiles vcl with varnishd -C, in a throw-away working directory,
// and returns nil when varnishd accepts it; a *CompileError when the VCL is
// wrong (a syntax error, a vmod that cannot be imported, an origin host that
// does not resolve); another error when varnishd cannot run (ErrNotInstalled
// when it is missing). varnishd is the program, default "varnishd" (see
// Lookup).
func Compile(ctx context.Context, varnishd, vcl string) error {
	bin, err := Lookup(varnishd)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cdnpurge-vcc-")
	if err != nil {
		return fmt.Errorf("varnish: %w", err)
	}
	defer os.RemoveAll(dir)
	// Run as root, varnishd hands the VCL to a compiler that runs as an
	// unprivileged user: it must be able to read the file.
	_ = os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "check.vcl")
	if err := os.WriteFile(path, []byte(vcl), 0o644); err != nil {
		return fmt.Errorf("varnish: write vcl: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, compileTimeout)
	defer cancel()
	// -C prints the generated C code on success (discarded) and the
	// compiler's message on failure.
	cmd := exec.CommandContext(ctx, bin, "-C", "-n", filepath.Join(dir, "work"), "-f", path)
	var out syncbuf.Buffer
	cmd.Stderr = &out
	err = cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("varnish: %s -C: %w", bin, ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &CompileError{Output: compilerMessage(out.String())}
	}
	if err != nil {
		return fmt.Errorf("varnish: %s -C: %w", bin, err)
	}
	return nil
}

// compilerMessage keeps what the VCL compiler said, without varnishd's
// chatter about its temporary files.
func compilerMessage(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "Could not delete ") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

var vmodNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// HasVmod says whether varnishd can import the vmod name (e.g. "xkey"): it
// compiles a VCL that imports it, which checks what an instance would check
// (that the library is on varnishd's vmod_path and built for this varnishd).
// It answers false without an error when only the import fails, and an
// error when varnishd cannot compile even a VCL without the import.
func HasVmod(varnishd, name string) (bool, error) {
	if !vmodNameRE.MatchString(name) {
		return false, fmt.Errorf("varnish: vmod name %q: use letters, digits and '_', starting with a letter", name)
	}
	ctx := context.Background()
	const base = "vcl 4.1;\nbackend default none;\n"
	err := Compile(ctx, varnishd, "vcl 4.1;\nimport "+name+";\nbackend default none;\n")
	var ce *CompileError
	if !errors.As(err, &ce) {
		return err == nil, err
	}
	// Tell "no such vmod" from "this varnishd compiles nothing".
	if err := Compile(ctx, varnishd, base); err != nil {
		return false, err
	}
	return false, nil
}
