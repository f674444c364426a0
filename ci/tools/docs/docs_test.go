// Package docs holds a test only: every GitHub Actions example in README.md
// and docs/*.md (a yaml block) passes actionlint, with shellcheck over its
// run: scripts, and a call of this project's reusable workflow is checked
// against the workflow in this checkout (its inputs, their types, its
// secrets). The other examples are run by the root module's docs package.
package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

var repo = filepath.Join("..", "..", "..")

// yamlBlock is a yaml block of a page and the line of its first line.
type yamlBlock struct {
	page string
	line int
	text string
}

func yamlBlocks(t *testing.T) []yamlBlock {
	t.Helper()
	paths := []string{filepath.Join(repo, "README.md")}
	more, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []yamlBlock
	for _, p := range append(paths, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repo, p)
		var cur *yamlBlock
		var body []string
		for i, l := range strings.Split(string(b), "\n") {
			switch t := strings.TrimSpace(l); {
			case cur == nil && t == "```yaml":
				cur, body = &yamlBlock{page: rel, line: i + 2}, nil
			case cur != nil && t == "```":
				cur.text = strings.Join(body, "\n") + "\n"
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				body = append(body, l)
			}
		}
	}
	return out
}

// The pages call the reusable workflow as a remote one
// (cdnpurge/cdnpurge/.github/workflows/purge.yml@TAG); it is checked as the
// local file it is.
var remoteCall = regexp.MustCompile(`cdnpurge/cdnpurge/(\.github/workflows/[a-z-]+\.yml)@\S+`)

func TestWorkflowExamples(t *testing.T) {
	blocks := yamlBlocks(t)
	if len(blocks) == 0 {
		t.Fatal("no yaml block in README.md or docs/*.md: is this test reading the right place?")
	}
	root, err := filepath.Abs(repo)
	if err != nil {
		t.Fatal(err)
	}
	project, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	shellcheck, _ := exec.LookPath("shellcheck")
	if shellcheck == "" && os.Getenv("CI") != "" {
		t.Fatal("shellcheck is not installed: the run: scripts of the examples would go unchecked")
	}
	for _, b := range blocks {
		text := remoteCall.ReplaceAllString(b.text, "./$1")
		offset := 0
		if !regexp.MustCompile(`(?m)^on:`).MatchString(text) {
			// A job to paste into a workflow: give it the workflow's head.
			text = "on: workflow_dispatch\n" + text
			offset = 1
		}
		// A job that needs one the example does not show (deploy) gets a
		// stand-in, as the workflow it is pasted into has it.
		for _, m := range regexp.MustCompile(`(?m)^\s+needs:\s*([\w-]+)\s*$`).FindAllStringSubmatch(text, -1) {
			if !regexp.MustCompile(`(?m)^  ` + m[1] + `:`).MatchString(text) {
				text += "  " + m[1] + ":\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deployed\n"
			}
		}
		var out bytes.Buffer
		l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Shellcheck: shellcheck, WorkingDir: root})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, ".github", "workflows", "docs-example.yml")
		errs, err := l.Lint(path, []byte(text), project)
		if err != nil {
			t.Fatalf("%s:%d: %v", b.page, b.line, err)
		}
		for _, e := range errs {
			t.Errorf("%s:%d: %s [%s]", b.page, b.line+e.Line-1-offset, e.Message, e.Kind)
		}
	}
}
