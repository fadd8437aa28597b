package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// completeCommand is the hidden command the completion scripts call:
// `hookstream __complete <word>… <current word>` prints the candidates for
// the current word, one a line. The scripts stay a few lines each and never
// fall out of step with the commands and their flags.
const completeCommand = "__complete"

// completionScripts are the scripts `hookstream completion SHELL` prints.
var completionScripts = map[string]string{
	"bash": `# hookstream completion for bash: source <(hookstream completion bash)
_hookstream() {
    local IFS=$'\n'
    COMPREPLY=($(hookstream ` + completeCommand + ` "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _hookstream hookstream
`,
	"zsh": `#compdef hookstream
# hookstream completion for zsh: source <(hookstream completion zsh), after compinit
_hookstream() {
    local -a cands
    cands=("${(@f)$(hookstream ` + completeCommand + ` "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#cands} )) && [[ -n "${cands[1]}" ]]; then
        compadd -- "${cands[@]}"
    else
        _files
    fi
}
compdef _hookstream hookstream
`,
	"fish": `# hookstream completion for fish: hookstream completion fish | source
function __hookstream_complete
    set -l words (commandline -opc) (commandline -ct)
    hookstream ` + completeCommand + ` $words[2..-1] 2>/dev/null
end
complete -c hookstream -f -a '(__hookstream_complete)'
`,
}

// completion SHELL
func (c *cli) completion(_ context.Context, args []string) error {
	fs := newFlagSet("completion", c.stderr)
	setSynopsis(fs, "hookstream completion bash|zsh|fish\n\n"+
		"  bash: source <(hookstream completion bash)        (or save it in /etc/bash_completion.d/hookstream)\n"+
		"  zsh:  source <(hookstream completion zsh)         (after compinit; or save it as _hookstream in $fpath)\n"+
		"  fish: hookstream completion fish | source        (or save it in ~/.config/fish/completions/hookstream.fish)")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	shell, err := exactlyOneArg(fs, "SHELL")
	if err != nil {
		return err
	}
	script, ok := completionScripts[shell]
	if !ok {
		return usageErrorf("completion: unknown shell %q; give bash, zsh or fish (for example: hookstream completion bash)", shell)
	}
	_, err = fmt.Fprint(c.stdout, script)
	return err
}

// flagValues are the values of the flags that take one of a few.
var flagValues = map[string][]string{
	"reason":    {"expired", "endpoint_gone", "endpoint_deleted", "undecodable"},
	"state":     {"dead", "replayed", "delivered"},
	"inbound":   inboundFormats,
	"log-level": {"debug", "info", "warn", "error"},
}

// usageFlagRE matches a flag's line in printFlagUsage's output.
var usageFlagRE = regexp.MustCompile(`^  --([a-z0-9-]+)( \S+)?$`)

// complete prints the candidates for the last of args.
func (c *cli) complete(ctx context.Context, args []string) error {
	if len(args) == 0 {
		args = []string{""}
	}
	cur, words := args[len(args)-1], args[:len(args)-1]
	cmd := &command{sub: commands()}
	path := []string{}
	rest := words
	for len(rest) > 0 && cmd.sub != nil {
		next := find(cmd.sub, rest[0])
		if next == nil || next.hidden {
			return nil
		}
		cmd, path, rest = next, append(path, rest[0]), rest[1:]
	}
	var cands []string
	switch {
	case cmd.sub != nil:
		for _, s := range cmd.sub {
			if !s.hidden && strings.HasPrefix(s.name, cur) {
				cands = append(cands, s.name)
			}
		}
	case cmd.name == "completion":
		for _, sh := range []string{"bash", "fish", "zsh"} {
			if strings.HasPrefix(sh, cur) {
				cands = append(cands, sh)
			}
		}
	case len(path) > 0:
		flags := c.leafFlags(ctx, cmd)
		if n := len(rest); n > 0 && strings.HasPrefix(rest[n-1], "-") && flags[strings.TrimLeft(rest[n-1], "-")] {
			// The current word is that flag's value.
			for _, v := range flagValues[strings.TrimLeft(rest[n-1], "-")] {
				if strings.HasPrefix(v, cur) {
					cands = append(cands, v)
				}
			}
			break
		}
		if cur == "" || strings.HasPrefix(cur, "-") {
			for name := range flags {
				if strings.HasPrefix(name, strings.TrimLeft(cur, "-")) {
					cands = append(cands, "--"+name)
				}
			}
		}
	}
	slices.Sort(cands)
	for _, s := range cands {
		fmt.Fprintln(c.stdout, s)
	}
	return nil
}

// leafFlags are a leaf command's flags, name to whether it takes a value,
// read from its -h (the one table parseFlags reads too); deprecated aliases
// are left out.
func (c *cli) leafFlags(ctx context.Context, cmd *command) map[string]bool {
	var buf bytes.Buffer
	lc := &cli{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, env: func(string) (string, bool) { return "", false }, now: c.now}
	_ = cmd.run(lc, ctx, []string{"-h"})
	flags := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	name, value := "", false
	for sc.Scan() {
		line := sc.Text()
		if m := usageFlagRE.FindStringSubmatch(line); m != nil {
			name, value = m[1], m[2] != ""
			continue
		}
		if name != "" {
			if !strings.Contains(line, "deprecated: ") {
				flags[name] = value
			}
			name = ""
		}
	}
	return flags
}
