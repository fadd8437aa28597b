package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, context.Background(), nil, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "hookstream "+completeCommand) {
			t.Errorf("completion %s: code %d, stdout %q, stderr %q", shell, r.code, r.stdout, r.stderr)
		}
		if bin, err := exec.LookPath(shell); err == nil && shell != "zsh" {
			// A syntax check where the shell is installed (zsh's script
			// needs compinit loaded to run, not to parse).
			cmd := exec.Command(bin, "-n")
			if shell == "fish" {
				cmd = exec.Command(bin, "--no-execute")
			}
			cmd.Stdin = strings.NewReader(r.stdout)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s does not parse its completion script: %v %s", shell, err, out)
			}
		}
	}
	r := runCLI(t, context.Background(), nil, "", "completion", "powershell")
	wantOneErrorLine(t, r, 2, `completion: unknown shell "powershell"; give bash, zsh or fish`)
}

// The hidden __complete command the scripts call offers commands,
// sub-commands, a leaf's flags (not the deprecated ones) and the values of
// flags that take one of a few.
func TestComplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		words []string
		want  string // candidates, one a line
	}{
		{[]string{""}, "api\nbench\ncompletion\ndispatcher\ndlq\nendpoints\nevents\nhelp\npoller\npublish\nserve\nsink\nsources\nversion"},
		{[]string{"d"}, "dispatcher\ndlq"},
		{[]string{"dlq", ""}, "list\npurge\nreplay\nshow\ntail"},
		{[]string{"dlq", "tail", "--"}, "--endpoint\n--json\n--poll\n--reason\n--server\n--token\n--type"},
		{[]string{"dlq", "list", "--reason", "e"}, "endpoint_deleted\nendpoint_gone\nexpired"},
		{[]string{"sources", "add", "--inbound", ""}, "discourse\ngithub\nhmac-sha256\nstandard"},
		{[]string{"sources", "add", "--id-"}, "--id-from\n--id-header"},
		{[]string{"completion", "f"}, "fish"},
		{[]string{"serve", "--nats-t"}, "--nats-tls-ca\n--nats-tls-cert\n--nats-tls-key\n--nats-token"},
		{[]string{"nope", ""}, ""},
	}
	for _, tt := range tests {
		r := runCLI(t, context.Background(), nil, "", append([]string{completeCommand}, tt.words...)...)
		if got := strings.TrimSuffix(r.stdout, "\n"); r.code != 0 || got != tt.want {
			t.Errorf("complete %q: code %d, got\n%s\nwant\n%s", tt.words, r.code, got, tt.want)
		}
	}
}
