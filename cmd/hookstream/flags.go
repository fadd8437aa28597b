package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// envPrefix starts the environment twin of every flag.
const envPrefix = "HOOKSTREAM_"

// envName is the environment twin of a flag: --api-token is
// HOOKSTREAM_API_TOKEN.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a flag set for the command name ("endpoints add") that
// reports to stderr and does not exit on errors: parseFlags turns them into
// usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printFlagUsage(fs, "hookstream "+name+" [flags]") }
	return fs
}

// setSynopsis replaces the first usage line of fs ("hookstream endpoints
// show ID").
func setSynopsis(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() { printFlagUsage(fs, synopsis) }
}

func printFlagUsage(fs *flag.FlagSet, synopsis string) {
	w := fs.Output()
	fmt.Fprintf(w, "usage: %s\n", synopsis)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nflags (each also read from its environment twin when not given):\n")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		fmt.Fprintf(w, "%s\n      %s (%s", head, usage, envName(f.Name))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintf(w, ")\n")
	})
}

// parseFlags parses args into fs, letting flags come before, between and
// after positional arguments (a "--" ends the flags), then gives every flag
// that was not on the command line the value of its HOOKSTREAM_* environment
// twin, if that is set and not empty. env is os.LookupEnv in production.
//
// A bad flag is a usage error, and so is a bad environment value, whose error
// names the variable (never its value, which may be a secret); -h prints the
// usage and returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) (string, bool)) error {
	out := fs.Output()
	// The flag package prints its own error and the usage on every mistake;
	// the CLI prints one line instead, so it is silenced while parsing.
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)

	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				fs.Usage()
				return errHelp
			}
			return usageErrorf("%s: %v (see 'hookstream %s -h')", fs.Name(), err, fs.Name())
		}
		left := fs.Args()
		consumed := len(rest) - len(left)
		if consumed > 0 && rest[consumed-1] == "--" {
			positional = append(positional, left...)
			break
		}
		if len(left) == 0 {
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	// Leave fs.Args() holding every positional argument.
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return usageErrorf("%s: %v", fs.Name(), err)
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || env == nil {
			return
		}
		name := envName(f.Name)
		v, ok := env(name)
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, usageErrorf("%s: invalid value for --%s: %v", name, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// given reports whether the flag was set, on the command line or by its
// environment twin.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// listFlag is a repeatable flag whose values may also be comma-separated:
// --secret a --secret b, or --secret a,b (the form its environment twin
// takes).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// repeatFlag is a repeatable flag whose values are kept whole (a header value
// may contain commas).
type repeatFlag []string

func (r *repeatFlag) String() string { return strings.Join(*r, "; ") }

func (r *repeatFlag) Set(s string) error {
	*r = append(*r, s)
	return nil
}

// durationText is a duration flag that keeps the text as given, for JSON
// bodies (durations travel as Go duration strings), after checking it parses.
type durationText string

func (d *durationText) String() string { return string(*d) }

func (d *durationText) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration like 30s or 15m")
	}
	if v <= 0 {
		return errors.New("must be positive")
	}
	*d = durationText(s)
	return nil
}

// positiveDuration is the poll interval flags' check.
func positiveDuration(name string, d time.Duration) error {
	if d <= 0 {
		return usageErrorf("--%s: must be positive, got %s", name, d)
	}
	return nil
}

// exactlyOneArg returns the single positional argument (an id) of a command.
func exactlyOneArg(fs *flag.FlagSet, what string) (string, error) {
	switch {
	case fs.NArg() == 0:
		return "", usageErrorf("%s: %s is required (usage: hookstream %s %s)", fs.Name(), what, fs.Name(), what)
	case fs.NArg() > 1:
		return "", usageErrorf("%s: takes one %s, got %d arguments: %s", fs.Name(), what, fs.NArg(), strings.Join(fs.Args(), " "))
	case strings.TrimSpace(fs.Arg(0)) == "":
		return "", usageErrorf("%s: %s must not be empty", fs.Name(), what)
	}
	return fs.Arg(0), nil
}

// noArgs refuses positional arguments on a command that takes none.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
