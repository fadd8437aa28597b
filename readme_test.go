// Package hookstream_test checks the README: each of its Go snippets is a
// whole program that compiles as shown, imports included, and checks its
// errors. Users copy them; one that drops an error (as the receiver once did
// with webhook.ParseSecret's, and so ran with an empty key) is a defect.
package hookstream_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/streams/streamstest"
)

func TestMain(m *testing.M) { streamstest.VerifyTestMain(m) }

// goBlock matches a fenced ```go block of README.md, its text in group 1.
var goBlock = regexp.MustCompile("(?ms)^```go[ \t]*\n(.*?)^```[ \t]*$")

// snippet is one Go block and the README line it starts on.
type snippet struct {
	line int
	code string
}

func readmeSnippets(t *testing.T) []snippet {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []snippet
	for _, m := range goBlock.FindAllSubmatchIndex(b, -1) {
		out = append(out, snippet{
			line: 1 + strings.Count(string(b[:m[2]]), "\n"),
			code: string(b[m[2]:m[3]]),
		})
	}
	if len(out) < 2 {
		t.Fatalf("README.md has %d Go snippets; the receiver's and the DLQ follower's at least were expected", len(out))
	}
	return out
}

// Each snippet parses as a whole file (a package clause and its imports, not
// a fragment) and assigns no result to the blank identifier: the results a
// snippet may drop are errors more often than not.
func TestREADMEGoSnippetsCheckErrors(t *testing.T) {
	t.Parallel()
	for _, s := range readmeSnippets(t) {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, fmt.Sprintf("README.md:%d", s.line), s.code, 0)
		if err != nil {
			t.Errorf("README.md:%d: the Go snippet is not a whole Go file: %v", s.line, err)
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok {
				return true
			}
			for _, lhs := range as.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name == "_" {
					t.Errorf("README.md:%d: %s drops a result with _: check it", s.line+fset.Position(as.Pos()).Line-1, fset.Position(as.Pos()))
				}
			}
			return true
		})
	}
}

// Each snippet builds as a program of its own inside this module, with the
// module's own dependencies: no network (GOPROXY=off), nothing downloaded.
func TestREADMEGoSnippetsBuild(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build the README's snippets with")
	}
	snippets := readmeSnippets(t)
	// Inside the module, so that the snippets import this module's packages
	// as they are; under bin/, which git ignores, so nothing left behind by
	// a killed run is ever committed; and "_" keeps ./... patterns (go vet
	// ./..., go test ./...) run meanwhile by anyone else from seeing it.
	if err := os.MkdirAll("bin", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("bin", "_readme-snippets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	bin := filepath.Join(dir, "bin") + string(filepath.Separator)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		// The test's own build compiled the dependencies with -race: reuse
		// them from the build cache instead of compiling them all again.
		args = append(args, "-race")
	}
	for _, s := range snippets {
		pkg := filepath.Join(dir, fmt.Sprintf("line%d", s.line))
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(s.code), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "./"+filepath.ToSlash(pkg))
	}
	cmd := exec.Command(goTool, args...)
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
