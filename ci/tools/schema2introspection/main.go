// Command schema2introspection turns the GraphQL SDL that Dagger ships
// (docs/docs-graphql/schema.graphqls) into the introspection JSON that
// Dagger's codegen reads with --introspection-json-path, so the module's
// bindings can be generated without an engine.
//
// The SDL may lose the @enumValue directives that mark enum aliases (GZIP is
// Gzip, OCI is OCIMediaTypes, ...): v0.20.6's drops them all, v0.21.8's keeps
// them. Missing ones are restored from dagger.io/dagger's own generated code
// at the same version, where every alias is a constant defined as another
// ("X T = Y"); an enum value the SDK does not name (its Go name collides with
// another's) is an alias of the first-declared value whose name equals it but
// for case and underscores. Where the SDL keeps them, the tests check that the
// restoration gives the same answer.
//
// Interfaces (Node, Exportable, Syncer since v0.21) get their possibleTypes,
// which introspection reports and codegen needs for Concrete().
//
//	schema2introspection -schema schema.graphqls -sdk dagger.gen.go -version v0.21.8 > introspection.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	schemaPath := flag.String("schema", "", "Dagger's schema.graphqls")
	sdkPath := flag.String("sdk", "", "dagger.io/dagger's dagger.gen.go at the same version")
	version := flag.String("version", "", "the schema version, e.g. v0.21.8")
	flag.Parse()
	if *schemaPath == "" || *sdkPath == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: schema2introspection -schema schema.graphqls -sdk dagger.gen.go -version vX.Y.Z > introspection.json")
		os.Exit(2)
	}
	if err := run(*schemaPath, *sdkPath, *version); err != nil {
		fmt.Fprintln(os.Stderr, "schema2introspection:", err)
		os.Exit(1)
	}
}

func run(schemaPath, sdkPath, version string) error {
	sdl, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	sdk, err := os.ReadFile(sdkPath)
	if err != nil {
		return err
	}
	aliases, err := sdkAliases(sdk)
	if err != nil {
		return fmt.Errorf("read aliases from %s: %w", sdkPath, err)
	}
	resp, warnings, err := convert(string(sdl), aliases, version)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(resp)
}
