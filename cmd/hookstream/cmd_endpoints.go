package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/hookstream/hookstream/client"
)

func endpointsCommands() []*command {
	return []*command{
		{name: "add", summary: "create an endpoint", run: (*cli).endpointsAdd},
		{name: "list", summary: "list endpoints", run: (*cli).endpointsList},
		{name: "show", summary: "show an endpoint", run: endpointCall("endpoints show", (*client.Client).Endpoint)},
		{name: "update", summary: "change an endpoint (only the flags given)", run: (*cli).endpointsUpdate},
		{name: "rm", summary: "delete an endpoint", run: (*cli).endpointsRm},
		{name: "enable", summary: "enable an endpoint", run: endpointCall("endpoints enable", (*client.Client).EnableEndpoint)},
		{name: "disable", summary: "disable an endpoint (its deliveries are held)", run: endpointCall("endpoints disable", (*client.Client).DisableEndpoint)},
		{name: "attempts", summary: "list an endpoint's delivery attempts", run: (*cli).endpointsAttempts},
		{name: "rotate-secret", summary: "give an endpoint a new signing secret", run: endpointCall("endpoints rotate-secret", (*client.Client).RotateSecret)},
	}
}

// idCommand parses the flags and the one ID of a command named name, and
// returns the client and a context that keeps the answers for --json.
func (c *cli) idCommand(ctx context.Context, name string, args []string) (string, *clientFlags, *client.Client, context.Context, *answers, error) {
	fs := newFlagSet(name, c.stderr)
	setSynopsis(fs, "hookstream "+name+" [flags] ID")
	cf := addClientFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return "", nil, nil, nil, nil, err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return "", nil, nil, nil, nil, err
	}
	cl, err := cf.client()
	if err != nil {
		return "", nil, nil, nil, nil, err
	}
	ctx, ans := captureAnswers(ctx)
	return id, cf, cl, ctx, ans, nil
}

// endpointCall is a command that takes one endpoint ID, calls f and prints
// the endpoint it answers.
func endpointCall(name string, f func(*client.Client, context.Context, string) (*client.Endpoint, error)) func(*cli, context.Context, []string) error {
	return func(c *cli, ctx context.Context, args []string) error {
		id, cf, cl, ctx, ans, err := c.idCommand(ctx, name, args)
		if err != nil {
			return err
		}
		ep, err := f(cl, ctx, id)
		if err != nil {
			return apiErr(cl, err)
		}
		if cf.json {
			return printJSON(c.stdout, ans.last())
		}
		return endpointFields(ep).print(c.stdout)
	}
}

func endpointFields(ep *client.Endpoint) fields {
	var f fields
	f.add("id", ep.ID)
	f.add("url", ep.URL)
	f.add("event types", strings.Join(ep.EventTypes, ", "))
	status := ep.Status
	if ep.StatusReason != "" {
		status += " (" + ep.StatusReason + ")"
	}
	f.add("status", status+" since "+when(ep.StatusSince))
	f.addIf("description", ep.Description)
	rate := "no limit"
	if ep.RateLimit > 0 {
		rate = strconv.FormatFloat(ep.RateLimit, 'g', -1, 64) + "/s"
	}
	f.add("rate limit", rate)
	conc := "the server's default"
	if ep.Concurrency > 0 {
		conc = num(ep.Concurrency)
	}
	f.add("concurrency", conc)
	if ep.Ordered {
		f.add("ordered", num(ep.Partitions)+" lanes, one delivery in flight per ordering key")
	}
	f.add("created", when(ep.CreatedAt))
	f.add("updated", when(ep.UpdatedAt))
	if ep.Secret != "" {
		f.add("secret (shown only now)", ep.Secret)
	}
	return f
}

// endpointFlags are the fields of an endpoint body that add and update share.
type endpointFlags struct {
	url, types, description string
	rateLimit               float64
	concurrency, partitions int
}

func addEndpointFlags(fs *flag.FlagSet) *endpointFlags {
	ef := &endpointFlags{}
	fs.StringVar(&ef.url, "url", "", "the URL webhooks are POSTed to")
	fs.StringVar(&ef.types, "types", "", "comma-separated event type filters: an exact type, a prefix like order.*, or *")
	fs.StringVar(&ef.description, "description", "", "a description for people")
	fs.Float64Var(&ef.rateLimit, "rate-limit", 0, "most deliveries per second, 0 for no limit")
	fs.IntVar(&ef.concurrency, "concurrency", 0, "most deliveries in flight (the server's default when not given: 10)")
	fs.IntVar(&ef.partitions, "partitions", 0, "lanes of an ordered endpoint, 1 to 256 (default 16); changed only while it holds no delivery")
	return ef
}

// update is the change the flags given ask for.
func (ef *endpointFlags) update(fs *flag.FlagSet) (client.EndpointUpdate, error) {
	var u client.EndpointUpdate
	if given(fs, "url") {
		u.URL = client.Ptr(ef.url)
	}
	if given(fs, "types") {
		types := splitList(ef.types)
		if len(types) == 0 {
			return u, usageErrorf("--types: at least one type filter is required (for example: --types 'order.*,invoice.paid')")
		}
		u.EventTypes = &types
	}
	if given(fs, "description") {
		u.Description = client.Ptr(ef.description)
	}
	if given(fs, "rate-limit") {
		if ef.rateLimit < 0 {
			return u, usageErrorf("--rate-limit: must not be negative, got %g (for example: --rate-limit 2.5, or 0 for none)", ef.rateLimit)
		}
		u.RateLimit = client.Ptr(ef.rateLimit)
	}
	if given(fs, "concurrency") {
		if ef.concurrency < 0 {
			return u, usageErrorf("--concurrency: must not be negative, got %d (for example: --concurrency 10)", ef.concurrency)
		}
		u.Concurrency = client.Ptr(ef.concurrency)
	}
	if given(fs, "partitions") {
		u.Partitions = client.Ptr(ef.partitions)
	}
	return u, nil
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
	setSynopsis(fs, "hookstream endpoints add --url U --types a.b,order.* [--secret whsec_…] [--description D] [--rate-limit N] [--concurrency N] [--ordered [--partitions N]]")
	cf := addClientFlags(fs)
	ef := addEndpointFlags(fs)
	secret := fs.String("secret", "", "signing secret, whsec_… (generated when not given)")
	ordered := fs.Bool("ordered", false, "deliver the events of one ordering key one at a time, in order (set at creation only)")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if ef.url == "" {
		return usageErrorf("endpoints add: --url is required (for example: hookstream endpoints add --url https://example.com/hook --types 'order.*')")
	}
	if !given(fs, "types") {
		return usageErrorf("endpoints add: --types is required (for example: --types order.created,invoice.* or --types '*')")
	}
	u, err := ef.update(fs)
	if err != nil {
		return err
	}
	in := client.EndpointCreate{URL: ef.url, EventTypes: *u.EventTypes, Secret: *secret, Description: ef.description}
	if u.RateLimit != nil {
		in.RateLimit = *u.RateLimit
	}
	if u.Concurrency != nil {
		in.Concurrency = *u.Concurrency
	}
	in.Ordered = *ordered
	if u.Partitions != nil {
		in.Partitions = *u.Partitions
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	ep, err := cl.CreateEndpoint(ctx, in)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	return endpointFields(ep).print(c.stdout)
}

// endpoints update ID [--url] [--types] [--description] [--rate-limit] [--concurrency]
func (c *cli) endpointsUpdate(ctx context.Context, args []string) error {
	fs := newFlagSet("endpoints update", c.stderr)
	setSynopsis(fs, "hookstream endpoints update ID [--url U] [--types T,…] [--description D] [--rate-limit N] [--concurrency N] [--partitions N]")
	cf := addClientFlags(fs)
	ef := addEndpointFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	u, err := ef.update(fs)
	if err != nil {
		return err
	}
	if u == (client.EndpointUpdate{}) {
		return usageErrorf("endpoints update: nothing to change; give at least one of --url, --types, --description, --rate-limit, --concurrency (for example: hookstream endpoints update %s --concurrency 5)", id)
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	ep, err := cl.UpdateEndpoint(ctx, id, u)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	return endpointFields(ep).print(c.stdout)
}

// endpoints rm ID
func (c *cli) endpointsRm(ctx context.Context, args []string) error {
	id, cf, cl, ctx, _, err := c.idCommand(ctx, "endpoints rm", args)
	if err != nil {
		return err
	}
	if err := cl.DeleteEndpoint(ctx, id); err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return nil // the API answers 204, no body
	}
	_, err = fmt.Fprintf(c.stdout, "deleted endpoint %s (its pending deliveries are dead-lettered as endpoint_deleted)\n", id)
	return err
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
	return listCommand(c, ctx, cf, pf, "endpoints",
		func(cl *client.Client) func(context.Context, client.ListOptions) (*client.Page[client.Endpoint], error) {
			return cl.ListEndpoints
		},
		func(eps []client.Endpoint) *table {
			t := newTable("ID", "STATUS", "TYPES", "URL", "DESCRIPTION")
			for _, ep := range eps {
				t.add(ep.ID, ep.Status, strings.Join(ep.EventTypes, ","), ep.URL, short(ep.Description, 40))
			}
			return t
		})
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
	return listCommand(c, ctx, cf, pf, "attempts",
		func(cl *client.Client) func(context.Context, client.ListOptions) (*client.Page[client.Attempt], error) {
			return func(ctx context.Context, o client.ListOptions) (*client.Page[client.Attempt], error) {
				return cl.Attempts(ctx, id, o)
			}
		},
		func(as []client.Attempt) *table {
			t := newTable("TIME", "EVENT", "TYPE", "ATTEMPT", "STATUS", "DURATION", "ERROR", "NEXT ATTEMPT")
			for _, a := range as {
				status := ""
				if a.StatusCode != 0 {
					status = num(a.StatusCode)
				}
				t.add(when(a.Time), a.EventID, a.EventType, num(a.Attempt), status, a.Duration.String(), short(a.Error, 60), when(a.NextAttempt))
			}
			return t
		})
}

// listCommand runs a list command: one page, or every page with --all; a
// table, or with --json the items as the API sent them.
func listCommand[T any](c *cli, ctx context.Context, cf *clientFlags, pf *pageFlags, what string,
	lister func(*client.Client) func(context.Context, client.ListOptions) (*client.Page[T], error), render func([]T) *table) error {
	if err := pf.check(); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	list := lister(cl)
	var (
		items []T
		next  string
	)
	if pf.all {
		items, err = client.Collect(client.All(ctx, pf.options(), list))
	} else {
		var p *client.Page[T]
		if p, err = list(ctx, pf.options()); err == nil {
			items, next = p.Items, p.NextCursor
		}
	}
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		raw, err := ans.items()
		if err != nil {
			return err
		}
		return encodeJSON(c.stdout, listJSON{Items: raw, NextCursor: next})
	}
	if err := render(items).print(c.stdout, what); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(c.stderr, "more %s: --cursor %s (or --all)\n", what, next)
	}
	return nil
}
