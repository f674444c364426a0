package pins

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

var repo = filepath.Join("..", "..", "..")

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func workflow(t *testing.T, path string) *actionlint.Workflow {
	t.Helper()
	w, errs := actionlint.Parse([]byte(read(t, path)))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errs[0])
	}
	return w
}

// inputDefaults are the defaults of a reusable workflow's inputs.
func inputDefaults(t *testing.T, w *actionlint.Workflow) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ev := range w.On {
		if call, ok := ev.(*actionlint.WorkflowCallEvent); ok {
			for _, in := range call.Inputs {
				if in.Default != nil {
					out[in.ID] = in.Default.Value
				}
			}
		}
	}
	return out
}

const module = "github.com/cdnpurge/cdnpurge"

var semverTag = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

func TestWorkflowPinsAgree(t *testing.T) {
	var cfg struct{ EngineVersion string }
	if err := json.Unmarshal([]byte(read(t, "dagger.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	engine := strings.TrimPrefix(cfg.EngineVersion, "v")
	defaults := inputDefaults(t, workflow(t, ".github/workflows/purge.yml"))

	// The module at the release this workflow belongs to, never a branch.
	mod, tag, ok := strings.Cut(defaults["module"], "@")
	if !ok || mod != module || !semverTag.MatchString(tag) {
		t.Fatalf("purge.yml's module default is %q: give %s@<the release tag of this workflow>, e.g. %s@v1.2.3", defaults["module"], module, module)
	}
	if got := defaults["dagger-version"]; got != engine {
		t.Errorf("purge.yml's dagger-version default is %q, dagger.json's engineVersion %s", got, cfg.EngineVersion)
	}

	// ci.yml's Dagger job runs the same engine.
	ci := workflow(t, ".github/workflows/ci.yml")
	found := false
	for _, job := range ci.Jobs {
		if job.Env == nil {
			continue
		}
		for _, v := range job.Env.Vars {
			if v.Name.Value == "DAGGER_VERSION" {
				found = true
				if strings.TrimPrefix(v.Value.Value, "v") != engine {
					t.Errorf("ci.yml's DAGGER_VERSION is %q, dagger.json's engineVersion %s", v.Value.Value, cfg.EngineVersion)
				}
			}
		}
	}
	if !found {
		t.Error("ci.yml has no job with DAGGER_VERSION")
	}

	// Every reference in the README, the docs pages and purge.yml's own
	// comments.
	pages, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"README.md", ".github/workflows/purge.yml"}
	for _, p := range pages {
		rel, _ := filepath.Rel(repo, p)
		paths = append(paths, rel)
	}
	for _, path := range paths {
		text := read(t, path)
		refs := regexp.MustCompile(`cdnpurge/cdnpurge/\.github/workflows/purge\.yml@(\S+)`).FindAllStringSubmatch(text, -1)
		if path == "README.md" && len(refs) == 0 {
			t.Errorf("%s shows no 'uses: cdnpurge/cdnpurge/.github/workflows/purge.yml@...'", path)
		}
		for _, r := range refs {
			if r[1] != tag {
				t.Errorf("%s calls purge.yml@%s; the workflow's module default is at %s", path, r[1], tag)
			}
		}
		for _, r := range regexp.MustCompile(module+`@(\S+?)[\x60'"\s)]`).FindAllStringSubmatch(text, -1) {
			if r[1] != tag && r[1] != "latest" {
				t.Errorf("%s names %s@%s; the workflow's module default is at %s", path, module, r[1], tag)
			}
		}
	}
	said := 0
	for _, path := range paths {
		text := read(t, path)
		for _, m := range regexp.MustCompile("`dagger-version`\\s+\\(default `([^`]+)`").FindAllStringSubmatch(text, -1) {
			said++
			if m[1] != engine {
				t.Errorf("%s says dagger-version defaults to %s; purge.yml and dagger.json say %s", path, m[1], engine)
			}
		}
		for _, m := range regexp.MustCompile(`engine v(\d+\.\d+\.\d+)`).FindAllStringSubmatch(text, -1) {
			if m[1] != engine {
				t.Errorf("%s names engine v%s; dagger.json's engineVersion is %s", path, m[1], cfg.EngineVersion)
			}
		}
	}
	if said == 0 {
		t.Error("no page says dagger-version's default (docs/github-actions.md did): the check above checked nothing")
	}
}
