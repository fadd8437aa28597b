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

// envName is the environment twin of a server flag: --api-token is
// HOOKSTREAM_API_TOKEN.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Environment names of the client commands. They read these and nothing
// else from the environment: a server's settings (HOOKSTREAM_DATA,
// HOOKSTREAM_CONCURRENCY, …) are often exported where a client runs, and
// read by a client they would turn into event data, endpoint settings or a
// skipped confirmation. No server flag has one of these names.
const (
	envServer     = "HOOKSTREAM_SERVER"      // --api of every client command
	envToken      = "HOOKSTREAM_TOKEN"       // --api-token of every client command
	envSinkSecret = "HOOKSTREAM_SINK_SECRET" // --secret of `hookstream sink`
)

// newFlagSet returns the flag set of a client command ("endpoints add"):
// only the flags given a twin with setEnvTwin are read from the
// environment. It reports to stderr and does not exit on errors: parseFlags
// turns them into usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printFlagUsage(fs, "hookstream "+name+" [flags]", false) }
	return fs
}

// newServerFlagSet returns the flag set of a server role: every flag has its
// HOOKSTREAM_* twin (parseServerFlags reads them).
func newServerFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printFlagUsage(fs, "hookstream "+name+" [flags]", true) }
	return fs
}

// setSynopsis replaces the first usage line of a client command's fs
// ("hookstream endpoints show ID").
func setSynopsis(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() { printFlagUsage(fs, synopsis, false) }
}

// twinValue is the Value of a client flag that an environment variable
// fills when the flag is not given.
type twinValue struct {
	flag.Value
	env string
}

// IsBoolFlag keeps a wrapped boolean flag usable without a value.
func (v *twinValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setEnvTwin makes env the environment variable that fills the client flag
// name when it is not given. Confirmations (--yes) never get one.
func setEnvTwin(fs *flag.FlagSet, name, env string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("setEnvTwin: no flag --" + name)
	}
	f.Value = &twinValue{Value: f.Value, env: env}
}

// flagEnv is the environment variable that fills f in a flag set of the
// given kind, "" for none.
func flagEnv(f *flag.Flag, server bool) string {
	if tv, ok := f.Value.(*twinValue); ok {
		return tv.env
	}
	if server {
		return envName(f.Name)
	}
	return ""
}

func printFlagUsage(fs *flag.FlagSet, synopsis string, server bool) {
	w := fs.Output()
	fmt.Fprintf(w, "usage: %s\n", synopsis)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	if server {
		fmt.Fprintf(w, "\nflags (each also read from its environment twin when not given):\n")
	} else {
		fmt.Fprintf(w, "\nflags (only those that name an environment variable are read from it when not given):\n")
	}
	fs.VisitAll(func(f *flag.Flag) {
		shown := *f
		switch v := f.Value.(type) {
		case *twinValue:
			shown.Value = v.Value // for UnquoteUsage's type name
		case *aliasValue:
			shown.Value = v.Value
		}
		typ, usage := flag.UnquoteUsage(&shown)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		var notes []string
		if env := flagEnv(f, server); env != "" {
			notes = append(notes, env)
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
			notes = append(notes, "default "+f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s", head, usage)
		if len(notes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintf(w, "\n")
	})
}

// parseFlags parses a client command's args into fs (see parseArgs), then
// gives each flag that has an environment twin (setEnvTwin) and was not on
// the command line the twin's value, if that is set and not empty. No other
// flag is read from the environment. env is os.LookupEnv in production.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) (string, bool)) error {
	return parseArgs(fs, args, env, false)
}

// parseServerFlags is parseFlags for a server role: every flag not on the
// command line is read from its HOOKSTREAM_* twin.
func parseServerFlags(fs *flag.FlagSet, args []string, env func(string) (string, bool)) error {
	return parseArgs(fs, args, env, true)
}

// parseArgs lets flags come before, between and after positional arguments
// (a "--" ends the flags), then fills the flags not given from their
// environment twins (every flag's with server, only the declared ones
// without).
//
// A bad flag is a usage error, and so is a bad environment value, whose error
// names the variable (never its value, which may be a secret); -h prints the
// usage and returns errHelp.
func parseArgs(fs *flag.FlagSet, args []string, env func(string) (string, bool), server bool) error {
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
			return flagError(fs, err)
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
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if a, ok := f.Value.(*aliasValue); ok {
			// --api given: --server's environment twin must not override it.
			given[a.of] = true
		}
	})
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := flagEnv(f, server)
		if given[f.Name] || env == nil || name == "" {
			return
		}
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

// given reports whether the flag was set, on the command line (itself or an
// alias of it) or by its environment twin.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if a, ok := f.Value.(*aliasValue); f.Name == name || ok && a.of == name {
			found = true
		}
	})
	return found
}

// aliasValue is the Value of a flag that sets another flag: an old name
// kept so that scripts written for it go on working.
type aliasValue struct {
	flag.Value
	of string
}

// addAlias adds --alias, setting the same value as --of.
func addAlias(fs *flag.FlagSet, alias, of string) {
	f := fs.Lookup(of)
	if f == nil {
		panic("addAlias: no flag --" + of)
	}
	v := f.Value
	if tv, ok := v.(*twinValue); ok {
		v = tv.Value // the alias has no environment twin of its own
	}
	fs.Var(&aliasValue{Value: v, of: of}, alias, "deprecated: the old name of --"+of)
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
