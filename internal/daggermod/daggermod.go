// Package daggermod reads the functions of the project's Dagger module
// (.dagger) from its Go source, as Dagger's codegen reads them: the
// constructor New and the methods of the module's object, each argument
// with its type and its +optional, +default and +defaultPath pragmas. It
// also reads the committed client bindings for the methods of Dagger's own
// types (a Service's up, say), whose optional arguments are the fields of
// an Opts struct.
//
// No engine runs where the tests run: the tests that hold the CLI's flags
// to the module's arguments, and the docs' dagger examples to both, read
// the module this way.
package daggermod

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// Arg is one argument of a function.
type Arg struct {
	Name        string // as in the source: dnsName
	Type        string // the Go type as written: string, []string, *dagger.Secret
	Optional    bool   // +optional, a +default or a +defaultPath
	Default     string // the +default pragma's JSON value
	HasDefault  bool
	DefaultPath bool // +defaultPath: filled from the module's source
}

// Flag is the argument's name on the dagger command line: --dns-name.
func (a Arg) Flag() string { return Kebab(a.Name) }

// Function is one function of the module, or a method of a Dagger type.
type Function struct {
	Name    string // as in the source: Purge, E2e, New, Up
	Args    []Arg
	Returns string // the first result's Go type, e.g. *dagger.Service
}

// Command is the function's name on the dagger command line: purge, e2e.
func (f *Function) Command() string { return Kebab(f.Name) }

// Arg returns the argument with this dagger flag name (dns-name).
func (f *Function) Arg(flag string) (Arg, bool) {
	for _, a := range f.Args {
		if a.Flag() == flag {
			return a, true
		}
	}
	return Arg{}, false
}

// Flags lists the function's argument flags, sorted.
func (f *Function) Flags() []string {
	var out []string
	for _, a := range f.Args {
		out = append(out, "--"+a.Flag())
	}
	sort.Strings(out)
	return out
}

// Module is the module's functions: New, and the methods of its object.
type Module struct {
	Object    string               // the module's object type, e.g. Cdnpurge
	Functions map[string]*Function // by source name
}

// Kebab is a name as the dagger CLI spells it: dnsName is dns-name, E2e
// is e2e.
func Kebab(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Read reads the module in dir (.dagger): New and every exported method of
// the type New returns, from every Go file but tests and the generated one.
func Read(dir string) (*Module, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	m := &Module{Functions: map[string]*Function{}}
	methods := map[string]map[string]*Function{} // receiver type -> name -> function
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || filepath.Base(name) == "dagger.gen.go" {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() {
				continue
			}
			fn := function(fset, f, fd)
			switch {
			case fd.Recv == nil && fd.Name.Name == "New":
				m.Functions["New"] = fn
				m.Object = strings.TrimPrefix(fn.Returns, "*")
			case fd.Recv != nil:
				recv := strings.TrimPrefix(typeString(fd.Recv.List[0].Type), "*")
				if methods[recv] == nil {
					methods[recv] = map[string]*Function{}
				}
				methods[recv][fn.Name] = fn
			}
		}
	}
	if m.Functions["New"] == nil {
		return nil, fmt.Errorf("%s: the module has no constructor New", dir)
	}
	for name, fn := range methods[m.Object] {
		m.Functions[name] = fn
	}
	return m, nil
}

// function reads fd's arguments and pragmas.
func function(fset *token.FileSet, f *ast.File, fd *ast.FuncDecl) *Function {
	fn := &Function{Name: fd.Name.Name}
	if fd.Type.Results != nil && len(fd.Type.Results.List) > 0 {
		fn.Returns = typeString(fd.Type.Results.List[0].Type)
	}
	comments := ast.NewCommentMap(fset, fd, f.Comments)
	for _, p := range fd.Type.Params.List {
		a := Arg{Type: typeString(p.Type)}
		for _, g := range comments[p] {
			for _, line := range strings.Split(g.Text(), "\n") {
				line = strings.TrimSpace(line)
				switch {
				case line == "+optional":
					a.Optional = true
				case strings.HasPrefix(line, "+default="):
					a.Default, a.HasDefault, a.Optional = strings.TrimPrefix(line, "+default="), true, true
				case strings.HasPrefix(line, "+defaultPath="):
					a.DefaultPath, a.Optional = true, true
				}
			}
		}
		for _, n := range p.Names {
			if a.Type == "context.Context" {
				continue
			}
			a.Name = n.Name
			fn.Args = append(fn.Args, a)
		}
	}
	return fn
}

// Bindings reads the methods of Dagger's own types from the committed
// client bindings (.dagger/internal/dagger/dagger.gen.go): by type (Service)
// and method (Up), with the required arguments and, as optional ones, the
// fields of the method's Opts struct (ServiceUpOpts).
func Bindings(file string) (map[string]map[string]*Function, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	opts := map[string][]Arg{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			ts := s.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok || !strings.HasSuffix(ts.Name.Name, "Opts") {
				continue
			}
			for _, fl := range st.Fields.List {
				for _, n := range fl.Names {
					name := []rune(n.Name)
					name[0] = unicode.ToLower(name[0])
					opts[ts.Name.Name] = append(opts[ts.Name.Name], Arg{Name: string(name), Type: typeString(fl.Type), Optional: true})
				}
			}
		}
	}
	out := map[string]map[string]*Function{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || !fd.Name.IsExported() {
			continue
		}
		recv := strings.TrimPrefix(typeString(fd.Recv.List[0].Type), "*")
		fn := &Function{Name: fd.Name.Name}
		if fd.Type.Results != nil && len(fd.Type.Results.List) > 0 {
			fn.Returns = typeString(fd.Type.Results.List[0].Type)
		}
		for _, p := range fd.Type.Params.List {
			t := typeString(p.Type)
			if t == "context.Context" {
				continue
			}
			if el, ok := strings.CutPrefix(t, "..."); ok {
				fn.Args = append(fn.Args, opts[el]...)
				continue
			}
			for _, n := range p.Names {
				fn.Args = append(fn.Args, Arg{Name: n.Name, Type: t})
			}
		}
		if out[recv] == nil {
			out[recv] = map[string]*Function{}
		}
		out[recv][fn.Name] = fn
	}
	return out, nil
}

// typeString is a type expression as written in the source.
func typeString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		return "*" + typeString(t.X)
	case *ast.SelectorExpr:
		return typeString(t.X) + "." + t.Sel.Name
	case *ast.ArrayType:
		return "[]" + typeString(t.Elt)
	case *ast.Ellipsis:
		return "..." + typeString(t.Elt)
	case *ast.MapType:
		return "map[" + typeString(t.Key) + "]" + typeString(t.Value)
	}
	return fmt.Sprintf("%T", e)
}
