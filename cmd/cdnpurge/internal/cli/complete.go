package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Shell completion works as cobra's does: the script a shell loads is a
// thin wrapper that asks the binary itself (cdnpurge __complete WORDS...)
// what may come next. The answers come from the commands' real flag sets
// and the values in choices, so completion cannot drift from the flags.

// completeCmd is the hidden command the scripts call.
const completeCmd = "__complete"

// Lines of __complete's answer besides candidates ("candidate\tdescription").
const (
	directiveFiles = ":files" // complete file names
)

const completionAbout = `Print a script that lets SHELL (bash, zsh or fish) complete cdnpurge's
commands, each command's flags, and the values of flags that take a fixed
set (--record, --format, --expect, --scheme, --mode, --verify=STEPS) or a
file. The script asks cdnpurge itself, so it always knows the flags of the
cdnpurge it runs.`

const completionExamples = `  source <(cdnpurge completion bash)   # in this shell; add the line to ~/.bashrc to keep it
  cdnpurge completion bash > /etc/bash_completion.d/cdnpurge
  source <(cdnpurge completion zsh)    # in ~/.zshrc, after compinit
  cdnpurge completion fish > ~/.config/fish/completions/cdnpurge.fish`

var completionScripts = map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}

func (a *App) completion(_ context.Context, args []string) error {
	f := newFlags("completion", completionAbout, completionExamples)
	f.operands, f.exits = "bash|zsh|fish", ""
	if err := f.parse(a, args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usagef("give the shell: cdnpurge completion bash, zsh or fish").hint("e.g. source <(cdnpurge completion bash)")
	}
	script, ok := completionScripts[f.args[0]]
	if !ok {
		err := usagef("completion %q: cdnpurge completes in bash, zsh or fish", f.args[0])
		if s := suggest(f.args[0], []string{"bash", "zsh", "fish"}); len(s) > 0 {
			return err.hint(didYouMean("cdnpurge completion ", s))
		}
		return err
	}
	_, err := io.WriteString(a.Stdout, script)
	return err
}

// complete writes what may come at the last of words (the words after
// "cdnpurge", the last one being completed, perhaps empty): one candidate a
// line, with a tab and a description where there is one, or a directive.
func (a *App) complete(w io.Writer, words []string) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	out := func(cand, desc string) {
		if strings.HasPrefix(cand, cur) {
			if desc != "" {
				cand += "\t" + desc
			}
			fmt.Fprintln(w, cand)
		}
	}
	if len(before) == 0 {
		if strings.HasPrefix(cur, "-") {
			out("--help", "show the commands")
			out("--version", "print the version")
			return
		}
		for _, c := range commands() {
			out(c.name, c.summary)
		}
		return
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == before[0] {
			cmd = &c
		}
	}
	switch {
	case cmd == nil:
		return
	case cmd.name == "help" && len(before) == 1:
		for _, c := range commands() {
			out(c.name, c.summary)
		}
		return
	case cmd.name == "completion" && len(before) == 1 && !strings.HasPrefix(cur, "-"):
		for _, s := range []string{"bash", "zsh", "fish"} {
			out(s, "")
		}
		return
	}
	f := a.flagsOf(*cmd)
	if f == nil {
		return
	}
	// The value of the flag before, when it takes one: --record <TAB>.
	if n := len(before); n > 1 && !strings.Contains(before[n-1], "=") {
		if fl := f.Lookup(strings.TrimLeft(before[n-1], "-")); strings.HasPrefix(before[n-1], "-") && fl != nil && !isBool(fl) {
			f.completeValue(w, fl, "", cur)
			return
		}
	}
	if strings.HasPrefix(cur, "-") {
		// --format=<TAB>, --verify=miss,<TAB>
		if name, value, ok := strings.Cut(strings.TrimLeft(cur, "-"), "="); ok {
			if fl := f.Lookup(name); fl != nil {
				f.completeValue(w, fl, cur[:len(cur)-len(value)], value)
			}
			return
		}
	}
	if cur != "" && !strings.HasPrefix(cur, "-") {
		return // commands take flags only
	}
	dashes := "--"
	if strings.HasPrefix(cur, "-") && !strings.HasPrefix(cur, "--") && len(cur) > 1 {
		dashes = "-" // as the user writes them: -dns-name
	}
	var names []string
	f.VisitAll(func(fl *flag.Flag) {
		if _, short := shorthands[fl.Name]; !short {
			names = append(names, fl.Name)
		}
	})
	sort.Strings(names)
	for _, n := range names {
		_, text := flagArg(f.Lookup(n))
		out(dashes+n, summary(text))
	}
	for short := range shorthands {
		if f.Lookup(short) != nil && cur != "" && !strings.HasPrefix(cur, "--") {
			out("-"+short, "short for --"+shorthands[short])
		}
	}
}

// completeValue writes the values fl takes that start with value, each
// after prefix (--format=), or asks for file names.
func (f *flags) completeValue(w io.Writer, fl *flag.Flag, prefix, value string) {
	if c, ok := choiceOf(f.cmd, fl.Name); ok {
		done := ""
		if c.list {
			// Each step of a list: --verify=miss,<TAB> offers miss,hit ...
			if i := strings.LastIndex(value, ","); i >= 0 {
				done, value = value[:i+1], value[i+1:]
			}
		}
		for _, v := range c.values {
			if strings.HasPrefix(v, strings.ToLower(value)) {
				fmt.Fprintln(w, prefix+done+v)
			}
		}
		return
	}
	if arg, _ := flagArg(fl); strings.Contains(arg, "FILE") || arg == "PROGRAM" {
		fmt.Fprintln(w, directiveFiles)
	}
}

// summary is a flag's text shortened for a completion menu: its first
// clause, at most 60 characters.
func summary(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	for _, sep := range []string{"; ", ": ", " (", ", e.g."} {
		if i := strings.Index(text, sep); i > 20 {
			text = text[:i]
		}
	}
	if len(text) > 60 {
		text = text[:57] + "..."
	}
	return text
}

const bashCompletion = `# bash completion for cdnpurge (generated by 'cdnpurge completion bash').
# In this shell: source <(cdnpurge completion bash)
# For good:      cdnpurge completion bash > /etc/bash_completion.d/cdnpurge
_cdnpurge() {
    local i w words=() join=0
    # Rejoin what COMP_WORDBREAKS split at '=': --verify=miss is one word.
    for ((i = 1; i <= COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        local n=${#words[@]}
        if [[ $w == "=" && $n -gt 0 && ${words[n-1]} == -* && ${words[n-1]} != *=* ]]; then
            words[n-1]+="="
            join=1
            continue
        fi
        if ((join)); then
            words[n-1]+=$w
            join=0
            continue
        fi
        words+=("$w")
    done
    local cur=${words[${#words[@]}-1]} strip=""
    # Readline replaces only what follows the last '=' when '=' breaks words.
    if [[ $cur == *=* && $COMP_WORDBREAKS == *=* ]]; then
        strip=${cur%=*}=
    fi
    local out line
    out=$("${COMP_WORDS[0]}" __complete "${words[@]}" 2>/dev/null) || return
    COMPREPLY=()
    while IFS= read -r line; do
        case $line in
        "") ;;
        :files)
            compopt -o filenames 2>/dev/null
            while IFS= read -r w; do COMPREPLY+=("$w"); done < <(compgen -f -- "${cur#"$strip"}")
            ;;
        :*) ;;
        *)
            line=${line%%$'\t'*}
            COMPREPLY+=("${line#"$strip"}")
            ;;
        esac
    done <<<"$out"
}
complete -F _cdnpurge cdnpurge
`

const zshCompletion = `#compdef cdnpurge
# zsh completion for cdnpurge (generated by 'cdnpurge completion zsh').
# In this shell: source <(cdnpurge completion zsh)   (after compinit)
# For good:      cdnpurge completion zsh > "${fpath[1]}/_cdnpurge"
_cdnpurge() {
    local -a lines items
    local line cand desc files=0
    lines=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in "${lines[@]}"; do
        case $line in
        "") ;;
        :files) files=1 ;;
        :*) ;;
        *)
            cand=${line%%$'\t'*}
            desc=""
            [[ $line == *$'\t'* ]] && desc=${line#*$'\t'}
            if [[ -n $desc ]]; then
                items+=("${cand//:/\\:}:$desc")
            else
                items+=("${cand//:/\\:}")
            fi
            ;;
        esac
    done
    ((files)) && _files
    ((${#items})) && _describe -t cdnpurge 'cdnpurge' items
    return 0
}
if [[ "${funcstack[1]}" == _cdnpurge ]]; then
    _cdnpurge "$@"
else
    compdef _cdnpurge cdnpurge
fi
`

const fishCompletion = `# fish completion for cdnpurge (generated by 'cdnpurge completion fish').
# In this shell: cdnpurge completion fish | source
# For good:      cdnpurge completion fish > ~/.config/fish/completions/cdnpurge.fish
function __cdnpurge_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    for line in ($tokens[1] __complete $tokens[2..-1] $cur 2>/dev/null)
        switch $line
            case ':files'
                __fish_complete_path $cur
            case ':*' ''
            case '*'
                echo $line
        end
    end
end
complete -c cdnpurge -f -a '(__cdnpurge_complete)'
`
