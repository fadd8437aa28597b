package main

import (
	"context"
	"flag"
	"net/http"
	"strings"
)

func endpointsCommands() []*command {
	return []*command{
		{name: "add", summary: "create an endpoint", run: (*cli).endpointsAdd},
		{name: "list", summary: "list endpoints", run: (*cli).endpointsList},
		{name: "show", summary: "show an endpoint", run: simpleCall("endpoints show", http.MethodGet, "/v1/endpoints/", "")},
		{name: "update", summary: "change an endpoint (only the flags given)", run: (*cli).endpointsUpdate},
		{name: "rm", summary: "delete an endpoint", run: simpleCall("endpoints rm", http.MethodDelete, "/v1/endpoints/", "")},
		{name: "enable", summary: "enable an endpoint", run: simpleCall("endpoints enable", http.MethodPost, "/v1/endpoints/", "/enable")},
		{name: "disable", summary: "disable an endpoint (its deliveries are held)", run: simpleCall("endpoints disable", http.MethodPost, "/v1/endpoints/", "/disable")},
		{name: "attempts", summary: "list an endpoint's delivery attempts", run: (*cli).endpointsAttempts},
		{name: "rotate-secret", summary: "give an endpoint a new signing secret", run: simpleCall("endpoints rotate-secret", http.MethodPost, "/v1/endpoints/", "/rotate-secret")},
	}
}

// simpleCall is a command that takes one ID and calls method prefix+ID+suffix
// with no body, printing the answer.
func simpleCall(name, method, prefix, suffix string) func(*cli, context.Context, []string) error {
	return func(c *cli, ctx context.Context, args []string) error {
		fs := newFlagSet(name, c.stderr)
		setSynopsis(fs, "hookstream "+name+" [flags] ID")
		cf := addClientFlags(fs)
		if err := parseFlags(fs, args, c.env); err != nil {
			return err
		}
		id, err := exactlyOneArg(fs, "ID")
		if err != nil {
			return err
		}
		return c.call(ctx, cf, method, prefix+esc(id)+suffix, nil, nil)
	}
}

// endpointFlags are the fields of an endpoint body that add and update share.
type endpointFlags struct {
	url, types, description string
	rateLimit               float64
	concurrency             int
}

func addEndpointFlags(fs *flag.FlagSet) *endpointFlags {
	ef := &endpointFlags{}
	fs.StringVar(&ef.url, "url", "", "the URL webhooks are POSTed to")
	fs.StringVar(&ef.types, "types", "", "comma-separated event type filters: an exact type, a prefix like order.*, or *")
	fs.StringVar(&ef.description, "description", "", "a description for people")
	fs.Float64Var(&ef.rateLimit, "rate-limit", 0, "most deliveries per second, 0 for no limit")
	fs.IntVar(&ef.concurrency, "concurrency", 0, "most deliveries in flight (the server's default when not given: 10)")
	return ef
}

// body is the JSON body with only the fields whose flags were given, as
// {"url","event_types","secret","description","rate_limit","concurrency"}.
func (ef *endpointFlags) body(fs *flag.FlagSet) (map[string]any, error) {
	b := map[string]any{}
	if given(fs, "url") {
		b["url"] = ef.url
	}
	if given(fs, "types") {
		types := splitList(ef.types)
		if len(types) == 0 {
			return nil, usageErrorf("--types: at least one type filter is required")
		}
		b["event_types"] = types
	}
	if given(fs, "description") {
		b["description"] = ef.description
	}
	if given(fs, "rate-limit") {
		if ef.rateLimit < 0 {
			return nil, usageErrorf("--rate-limit: must not be negative, got %g", ef.rateLimit)
		}
		b["rate_limit"] = ef.rateLimit
	}
	if given(fs, "concurrency") {
		if ef.concurrency < 0 {
			return nil, usageErrorf("--concurrency: must not be negative, got %d", ef.concurrency)
		}
		b["concurrency"] = ef.concurrency
	}
	return b, nil
}

// splitList splits a comma-separated flag, dropping blanks.
func splitList(s string) []string {
	out := []string{}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// endpoints add --url U --types a.b,order.* [--secret whsec_…] [--description D] [--rate-limit N] [--concurrency N]
func (c *cli) endpointsAdd(ctx context.Context, args []string) error {
	fs := newFlagSet("endpoints add", c.stderr)
	setSynopsis(fs, "hookstream endpoints add --url U --types a.b,order.* [--secret whsec_…] [--description D] [--rate-limit N] [--concurrency N]")
	cf := addClientFlags(fs)
	ef := addEndpointFlags(fs)
	secret := fs.String("secret", "", "signing secret, whsec_… (generated when not given)")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if ef.url == "" {
		return usageErrorf("endpoints add: --url is required")
	}
	if !given(fs, "types") {
		return usageErrorf("endpoints add: --types is required (e.g. order.created,invoice.* or *)")
	}
	body, err := ef.body(fs)
	if err != nil {
		return err
	}
	if *secret != "" {
		body["secret"] = *secret
	}
	return c.call(ctx, cf, http.MethodPost, "/v1/endpoints", nil, body)
}

// endpoints update ID [--url] [--types] [--description] [--rate-limit] [--concurrency]
func (c *cli) endpointsUpdate(ctx context.Context, args []string) error {
	fs := newFlagSet("endpoints update", c.stderr)
	setSynopsis(fs, "hookstream endpoints update ID [--url U] [--types T,…] [--description D] [--rate-limit N] [--concurrency N]")
	cf := addClientFlags(fs)
	ef := addEndpointFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	body, err := ef.body(fs)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return usageErrorf("endpoints update: nothing to change; give at least one of --url, --types, --description, --rate-limit, --concurrency")
	}
	return c.call(ctx, cf, http.MethodPatch, "/v1/endpoints/"+esc(id), nil, body)
}

// endpoints list [--limit N] [--cursor C] [--all]
func (c *cli) endpointsList(ctx context.Context, args []string) error {
	fs := newFlagSet("endpoints list", c.stderr)
	cf := addClientFlags(fs)
	pf := addPageFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	return c.printList(ctx, cf, pf, "/v1/endpoints", nil)
}

// endpoints attempts ID [--limit N] [--cursor C] [--all]
func (c *cli) endpointsAttempts(ctx context.Context, args []string) error {
	fs := newFlagSet("endpoints attempts", c.stderr)
	setSynopsis(fs, "hookstream endpoints attempts ID [--limit N] [--cursor C] [--all]")
	cf := addClientFlags(fs)
	pf := addPageFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	return c.printList(ctx, cf, pf, "/v1/endpoints/"+esc(id)+"/attempts", nil)
}

// printList runs a list command: one page, or every page with --all.
func (c *cli) printList(ctx context.Context, cf *clientFlags, pf *pageFlags, path string, query map[string][]string) error {
	if err := pf.check(); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	p, err := cl.list(ctx, path, query, pf)
	if err != nil {
		return err
	}
	return encodeJSON(c.stdout, p)
}
