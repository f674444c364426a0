package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// helpWidth is the width every help text fits in (a test holds them to it).
const helpWidth = 80

// help writes the command's help: what it does, its flags by group (see
// flagGroups), examples and exit codes, wrapped to helpWidth.
func (f *flags) help(w io.Writer) {
	usage := f.cmd + " [flags]"
	if f.operands != "" {
		usage = f.cmd + " " + f.operands
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s\n", strings.TrimSpace(f.about), usage)
	listed := map[string]bool{}
	for _, g := range flagGroups {
		if !f.grouped {
			break
		}
		var in []*flag.Flag
		for _, n := range g.flags {
			if cmd, name, ok := strings.Cut(n, "/"); ok {
				if "cdnpurge "+cmd != f.cmd {
					continue
				}
				n = name
			}
			if fl := f.Lookup(n); fl != nil && !listed[n] {
				in = append(in, fl)
				listed[n] = true
			}
		}
		if len(in) > 0 {
			fmt.Fprintf(w, "\n%s:\n", g.title)
			for _, fl := range in {
				f.writeFlag(w, fl)
			}
		}
	}
	var rest []*flag.Flag
	f.VisitAll(func(fl *flag.Flag) {
		if _, short := shorthands[fl.Name]; !listed[fl.Name] && !short {
			rest = append(rest, fl)
		}
	})
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	if len(rest) > 0 {
		title := "Other flags"
		if len(listed) == 0 {
			title = "Flags"
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, fl := range rest {
			f.writeFlag(w, fl)
		}
	}
	if f.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", wrapExamples(f.examples, helpWidth))
	}
	if f.exits != "" {
		fmt.Fprintf(w, "\n%s", wrap(f.exits, helpWidth, ""))
	}
}

// writeFlag writes one flag: its names and argument, then its text and
// default, indented.
func (f *flags) writeFlag(w io.Writer, fl *flag.Flag) {
	names := "--" + fl.Name
	if len(fl.Name) == 1 {
		names = "-" + fl.Name
	}
	for short, long := range shorthands {
		if long == fl.Name && f.Lookup(short) != nil {
			names = "-" + short + ", " + names
		}
	}
	arg, text := flagArg(fl)
	switch {
	case arg == "":
	case isBool(fl):
		names += "[=" + arg + "]"
	default:
		names += " " + arg
	}
	text = strings.Join(strings.Fields(text), " ")
	if v := fl.DefValue; v != "" && v != "false" && v != "0" && v != "0s" && v != "[]" && !isBool(fl) {
		text += fmt.Sprintf(" (default %s)", v)
	}
	fmt.Fprintf(w, "  %s\n%s", names, wrap(text, helpWidth, "      "))
}

// optionalArg is a flag that takes a value only when attached with '='
// (--verify[=STEPS]).
type optionalArg interface{ OptionalArg() string }

// flagArg is the name of fl's argument as help shows it (upper case: NAME,
// FILE, HOST:PORT), empty for a flag that takes none, and its text.
func flagArg(fl *flag.Flag) (arg, text string) {
	arg, text = flag.UnquoteUsage(fl)
	if o, ok := fl.Value.(optionalArg); ok {
		return o.OptionalArg(), text
	}
	switch {
	case strings.Contains(arg, "|"):
		return arg, text // the values themselves: http|https
	case arg == "int":
		arg = "N"
	case arg == "value", arg == "string":
		arg = "VALUE"
	}
	return strings.ToUpper(arg), text
}

// wrap fills text into lines of at most width columns, each starting with
// indent; a word longer than a line gets a line of its own.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		line := indent
		for _, word := range strings.Fields(para) {
			if line != indent && len(line)+1+len(word) > width {
				b.WriteString(line + "\n")
				line = indent
			}
			if line != indent {
				line += " "
			}
			line += word
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// wrapExamples fits example command lines to width: a long command is
// continued on the next line ("\" at the end), broken between shell words
// (a flag kept with its value); a comment after a command goes on a line
// of its own above it.
func wrapExamples(examples string, width int) string {
	var out []string
	for _, line := range strings.Split(examples, "\n") {
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		if cmd, comment, ok := strings.Cut(line, "   # "); ok && len(line) > width {
			out = append(out, strings.TrimRight(wrap("# "+strings.TrimSpace(comment), width, indent), "\n"))
			line = strings.TrimRight(cmd, " ")
		}
		if len(line) <= width {
			out = append(out, line)
			continue
		}
		words := shellWords(line)
		cur := indent + words[0]
		for i := 1; i < len(words); i++ {
			piece := words[i]
			if strings.HasPrefix(piece, "-") && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") && words[i+1] != "|" {
				piece += " " + words[i+1]
				i++
			}
			if len(cur)+1+len(piece)+2 > width {
				out = append(out, cur+" \\")
				cur = indent + "    " + piece
				continue
			}
			cur += " " + piece
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

// shellWords splits a command line at spaces outside quotes.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	for _, r := range strings.TrimSpace(line) {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == ' ':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}
