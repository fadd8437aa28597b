// Command hookstream is the one hookstream binary: the server roles (serve,
// api, dispatcher, poller), the client commands that drive the HTTP API
// (publish, endpoints, events, dlq, sources) and `sink`, a receiver that
// verifies signatures and simulates failing endpoints. This file owns the
// command table, the dispatch and the exit-code and error-line conventions.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts a graceful stop, a second one kills.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: 0 on
// success, 1 on an error, 2 on a usage error. An error is printed as one line
// "hookstream: <error>" on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		env:    os.LookupEnv,
		now:    time.Now,
		isTTY:  isTerminal,
	}
	return c.run(ctx, args)
}

// cli is what every command runs with; tests build one with a map for env
// and a fixed clock.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    func(string) (string, bool)
	now    func() time.Time
	// isTTY reports whether a writer is a terminal (progress bars are drawn
	// only there); nil means none is.
	isTTY func(io.Writer) bool
}

// tty reports whether w is a terminal.
func (c *cli) tty(w io.Writer) bool { return c.isTTY != nil && c.isTTY(w) }

// command is one entry of the command table: a leaf with run, or a group
// with sub-commands.
type command struct {
	name    string
	summary string
	run     func(c *cli, ctx context.Context, args []string) error
	sub     []*command
	// hidden commands are left out of the usage and of completion.
	hidden bool
}

// commands is the command table, in the order usage lists it.
func commands() []*command {
	role := func(name string) func(*cli, context.Context, []string) error {
		return func(c *cli, ctx context.Context, args []string) error {
			return runRole(ctx, name, args, c.env, c.stdout, c.stderr)
		}
	}
	return []*command{
		{name: "serve", summary: "run everything in one process on an embedded NATS", run: role(roleServe)},
		{name: "api", summary: "run the HTTP API role against --nats-url", run: role(roleAPI)},
		{name: "dispatcher", summary: "run the dispatcher role against --nats-url", run: role(roleDispatcher)},
		{name: "poller", summary: "run the poller role against --nats-url", run: role(rolePoller)},
		{name: "publish", summary: "publish an event", run: (*cli).publish},
		{name: "endpoints", summary: "manage endpoints", sub: endpointsCommands()},
		{name: "events", summary: "inspect events", sub: eventsCommands()},
		{name: "dlq", summary: "inspect, replay, follow and purge dead letters", sub: dlqCommands()},
		{name: "sources", summary: "manage polled sources", sub: sourcesCommands()},
		{name: "bench", summary: "measure the floors and hookstream end to end; print a table", run: func(c *cli, ctx context.Context, args []string) error {
			return runBench(ctx, args, c.stdout, c.stderr)
		}},
		{name: "sink", summary: "receive webhooks: verify signatures, simulate failures", run: (*cli).sink},
		{name: "completion", summary: "print a shell completion script: bash, zsh or fish", run: (*cli).completion},
		{name: "version", summary: "print the version", run: (*cli).version},
		{name: completeCommand, summary: "", run: (*cli).complete, hidden: true},
		{name: "help", summary: "show this help"},
	}
}

func (c *cli) run(ctx context.Context, args []string) int {
	err := c.dispatch(ctx, args)
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(c.stderr, "hookstream: %s\n", oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	top := &command{name: "", sub: commands()}
	if len(args) == 0 {
		printUsage(c.stderr, top, nil)
		return usageErrorf("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return c.help(args[1:], top)
	}
	path := []string{}
	cmd := top
	for {
		if cmd.run != nil {
			return cmd.run(c, ctx, args)
		}
		if len(args) == 0 {
			printUsage(c.stderr, cmd, path)
			return usageErrorf("%s: a sub-command is required", strings.Join(path, " "))
		}
		name := args[0]
		if name == "help" || name == "-h" || name == "-help" || name == "--help" {
			printUsage(c.stdout, cmd, path)
			return errHelp
		}
		next := find(cmd.sub, name)
		if next == nil || next.name == "help" {
			printUsage(c.stderr, cmd, path)
			if len(path) == 0 {
				return usageErrorf("unknown command %q", name)
			}
			return usageErrorf("%s: unknown sub-command %q", strings.Join(path, " "), name)
		}
		path = append(path, name)
		cmd, args = next, args[1:]
	}
}

// help prints the usage of the top level or of a command group:
// `hookstream help`, `hookstream help dlq`.
func (c *cli) help(args []string, top *command) error {
	cmd, path := top, []string{}
	for _, name := range args {
		next := find(cmd.sub, name)
		if next == nil {
			printUsage(c.stderr, top, nil)
			return usageErrorf("help: unknown command %q", strings.Join(append(path, name), " "))
		}
		cmd, path = next, append(path, name)
		if next.run != nil {
			// A leaf's help is its flag set's: run it with -h.
			return cmd.run(c, context.Background(), []string{"-h"})
		}
	}
	printUsage(c.stdout, cmd, path)
	return errHelp
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer, cmd *command, path []string) {
	prefix := strings.TrimSpace("hookstream " + strings.Join(path, " "))
	fmt.Fprintf(w, "usage: %s <command> [flags] [args]\n\ncommands:\n", prefix)
	width := 0
	for _, s := range cmd.sub {
		if !s.hidden {
			width = max(width, len(s.name))
		}
	}
	for _, s := range cmd.sub {
		if !s.hidden {
			fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
		}
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags. The server roles (serve, api,\n", prefix)
	fmt.Fprintf(w, "dispatcher, poller) read each flag not given from its environment twin: --nats-url from\n")
	fmt.Fprintf(w, "HOOKSTREAM_NATS_URL. The other commands read only %s (--server) and\n", envServer)
	fmt.Fprintf(w, "%s (--token), and sink %s (--secret). They print tables; --json\n", envToken, envSinkSecret)
	fmt.Fprintf(w, "prints the API's JSON instead, for scripts.\n")
}

func (c *cli) version(_ context.Context, args []string) error {
	fs := newFlagSet("version", c.stderr)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("version: takes no arguments")
	}
	fmt.Fprintf(c.stdout, "hookstream %s\n", version)
	return nil
}

// usageError is a mistake in the command line; it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp reports that usage was asked for and printed: exit 0, no error line.
var errHelp = errors.New("help requested")

// oneLine keeps an error to the one line the CLI promises, whatever a server
// or the OS put in it.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
