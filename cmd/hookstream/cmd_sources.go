package main

import (
	"context"
	"flag"
	"net/http"
	"strings"
)

func sourcesCommands() []*command {
	return []*command{
		{name: "add", summary: "connect a source whose change feed is polled", run: (*cli).sourcesAdd},
		{name: "list", summary: "list sources", run: (*cli).sourcesList},
		{name: "show", summary: "show a source and its status", run: simpleCall("sources show", http.MethodGet, "/v1/sources/", "")},
		{name: "update", summary: "change a source (only the flags given)", run: (*cli).sourcesUpdate},
		{name: "rm", summary: "delete a source", run: simpleCall("sources rm", http.MethodDelete, "/v1/sources/", "")},
	}
}

// sourceFlags are the fields of a source body that add and update share.
type sourceFlags struct {
	changesURL     string
	interval       durationText
	expectedWindow durationText
	headers        repeatFlag
}

func addSourceFlags(fs *flag.FlagSet) *sourceFlags {
	sf := &sourceFlags{}
	fs.StringVar(&sf.changesURL, "changes-url", "", "the source's change feed, polled as GET <url>?since=<cursor>")
	fs.Var(&sf.interval, "interval", "how often the feed is polled, e.g. 1m (the server's default when not given)")
	fs.Var(&sf.expectedWindow, "expected-window", "a source silent this long is polled at once, e.g. 15m (the server's default when not given)")
	fs.Var(&sf.headers, "header", "a header sent with each poll, 'Name: value' (repeatable; replaces all headers on update)")
	return sf
}

// body is the JSON body with only the fields whose flags were given, as
// {"changes_url","interval","expected_window","headers":{"Name":"value"}}.
func (sf *sourceFlags) body(fs *flag.FlagSet) (map[string]any, error) {
	b := map[string]any{}
	if given(fs, "changes-url") {
		b["changes_url"] = sf.changesURL
	}
	if given(fs, "interval") {
		b["interval"] = string(sf.interval)
	}
	if given(fs, "expected-window") {
		b["expected_window"] = string(sf.expectedWindow)
	}
	if given(fs, "header") {
		h := map[string]string{}
		for i, kv := range sf.headers {
			name, value, ok := strings.Cut(kv, ":")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				// Never echo it: headers carry credentials.
				return nil, usageErrorf("--header #%d: must be 'Name: value'", i+1)
			}
			h[name] = strings.TrimSpace(value)
		}
		b["headers"] = h
	}
	return b, nil
}

// sources add --id S --changes-url U [--interval 1m] [--expected-window 15m] [--header 'Authorization: Bearer x']
func (c *cli) sourcesAdd(ctx context.Context, args []string) error {
	fs := newFlagSet("sources add", c.stderr)
	setSynopsis(fs, "hookstream sources add --id S --changes-url U [--interval 1m] [--expected-window 15m] [--header 'Name: value']…")
	cf := addClientFlags(fs)
	id := fs.String("id", "", "the source id, the <source> of its events (required)")
	sf := addSourceFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *id == "" {
		return usageErrorf("sources add: --id is required")
	}
	if sf.changesURL == "" {
		return usageErrorf("sources add: --changes-url is required")
	}
	body, err := sf.body(fs)
	if err != nil {
		return err
	}
	body["id"] = *id
	return c.call(ctx, cf, http.MethodPost, "/v1/sources", nil, body)
}

// sources update ID [--changes-url] [--interval] [--expected-window] [--header]
func (c *cli) sourcesUpdate(ctx context.Context, args []string) error {
	fs := newFlagSet("sources update", c.stderr)
	setSynopsis(fs, "hookstream sources update ID [--changes-url U] [--interval 1m] [--expected-window 15m] [--header 'Name: value']…")
	cf := addClientFlags(fs)
	sf := addSourceFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	body, err := sf.body(fs)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return usageErrorf("sources update: nothing to change; give at least one of --changes-url, --interval, --expected-window, --header")
	}
	return c.call(ctx, cf, http.MethodPatch, "/v1/sources/"+esc(id), nil, body)
}

// sources list [--limit N] [--cursor C] [--all]
func (c *cli) sourcesList(ctx context.Context, args []string) error {
	fs := newFlagSet("sources list", c.stderr)
	cf := addClientFlags(fs)
	pf := addPageFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	return c.printList(ctx, cf, pf, "/v1/sources", nil)
}
