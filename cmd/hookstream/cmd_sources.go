package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hookstream/hookstream/client"
)

func sourcesCommands() []*command {
	return []*command{
		{name: "add", summary: "connect a source: a change feed to poll, webhooks it pushes, or both", run: (*cli).sourcesAdd},
		{name: "list", summary: "list sources", run: (*cli).sourcesList},
		{name: "show", summary: "show a source and its status", run: (*cli).sourcesShow},
		{name: "update", summary: "change a source (only the flags given)", run: (*cli).sourcesUpdate},
		{name: "rm", summary: "delete a source", run: (*cli).sourcesRm},
		{name: "rotate-secret", summary: "give a source a new inbound secret (the old one verifies for a while)", run: (*cli).sourcesRotate},
	}
}

// inboundFormats are the formats --inbound takes.
var inboundFormats = []string{client.InboundStandard, client.InboundDiscourse, client.InboundGitHub, client.InboundHMACSHA256}

// sourceFlags are the fields of a source body that add and update share.
type sourceFlags struct {
	changesURL      string
	interval        durationText
	expectedWindow  durationText
	headers         repeatFlag
	inbound         string
	secret          string
	signatureHeader string
	idHeader        string
	idFrom          repeatFlag
}

func addSourceFlags(fs *flag.FlagSet) *sourceFlags {
	sf := &sourceFlags{}
	fs.StringVar(&sf.changesURL, "changes-url", "", "the source's change feed, polled as GET <url>?since=<cursor>")
	fs.Var(&sf.interval, "interval", "how often the feed is polled, e.g. 1m (the server's default when not given)")
	fs.Var(&sf.expectedWindow, "expected-window", "a source silent this long is polled at once, e.g. 15m (the server's default when not given)")
	fs.Var(&sf.headers, "header", "a header sent with each poll, 'Name: value' (repeatable; replaces all headers on update)")
	fs.StringVar(&sf.inbound, "inbound", "", "receive the source's own webhooks at <server>/ingest/<id>, verified as: "+strings.Join(inboundFormats, ", "))
	fs.StringVar(&sf.secret, "secret", "", "the secret that verifies the pushed webhooks' signatures (with --inbound)")
	fs.StringVar(&sf.signatureHeader, "signature-header", "", "the header holding the signature (with --inbound hmac-sha256)")
	fs.StringVar(&sf.idHeader, "id-header", "", "the header holding the provider's delivery id (with --inbound hmac-sha256)")
	fs.Var(&sf.idFrom, "id-from", "a JSON pointer into the body, a part of the event id instead of the id header, e.g. /post/id (repeatable, joined with ':')")
	return sf
}

// inboundGiven reports whether any inbound flag was given.
func inboundGiven(fs *flag.FlagSet) bool {
	for _, n := range []string{"inbound", "secret", "signature-header", "id-header", "id-from"} {
		if given(fs, n) {
			return true
		}
	}
	return false
}

// inboundSettings are the inbound settings the flags give; nil when none.
func (sf *sourceFlags) inboundSettings(fs *flag.FlagSet) (*client.Inbound, error) {
	if !inboundGiven(fs) {
		return nil, nil
	}
	if sf.inbound == "" {
		return nil, usageErrorf("--inbound: required with --secret, --signature-header, --id-header and --id-from (for example: --inbound github --secret S)")
	}
	known := false
	for _, f := range inboundFormats {
		known = known || f == sf.inbound
	}
	if !known {
		return nil, usageErrorf("--inbound: must be %s, got %q (for example: --inbound github)", strings.Join(inboundFormats, ", "), sf.inbound)
	}
	for i, p := range sf.idFrom {
		if !strings.HasPrefix(p, "/") {
			return nil, usageErrorf("--id-from #%d: a JSON pointer starts with '/', got %q (for example: --id-from /post/id)", i+1, p)
		}
	}
	return &client.Inbound{Format: sf.inbound, Secret: sf.secret, Header: sf.signatureHeader, IDHeader: sf.idHeader, IDFrom: sf.idFrom}, nil
}

// update is the change the flags given ask for.
func (sf *sourceFlags) update(fs *flag.FlagSet) (client.SourceUpdate, error) {
	var u client.SourceUpdate
	if given(fs, "changes-url") {
		u.ChangesURL = client.Ptr(sf.changesURL)
	}
	if given(fs, "interval") {
		d, _ := time.ParseDuration(string(sf.interval)) // durationText checked it
		u.Interval = client.Ptr(client.Duration(d))
	}
	if given(fs, "expected-window") {
		d, _ := time.ParseDuration(string(sf.expectedWindow))
		u.ExpectedWindow = client.Ptr(client.Duration(d))
	}
	if given(fs, "header") {
		h := map[string]string{}
		for i, kv := range sf.headers {
			name, value, ok := strings.Cut(kv, ":")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				// Never echo it: headers carry credentials.
				return u, usageErrorf("--header #%d: must be 'Name: value' (for example: --header 'Authorization: Bearer x')", i+1)
			}
			h[name] = strings.TrimSpace(value)
		}
		u.Headers = &h
	}
	in, err := sf.inboundSettings(fs)
	if err != nil {
		return u, err
	}
	u.Inbound = in
	return u, nil
}

// sources add --id S [--changes-url U] [--interval 1m] [--expected-window 15m] [--header 'Name: value']… [--inbound F --secret S …]
func (c *cli) sourcesAdd(ctx context.Context, args []string) error {
	fs := newFlagSet("sources add", c.stderr)
	setSynopsis(fs, "hookstream sources add --id S [--changes-url U] [--interval 1m] [--expected-window 15m] [--header 'Name: value']…\n"+
		"       [--inbound standard|discourse|github|hmac-sha256 --secret S [--signature-header H] [--id-header H] [--id-from /json/pointer]…]")
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
		return usageErrorf("sources add: --id is required (for example: hookstream sources add --id erp --changes-url https://erp.example/changes)")
	}
	if sf.changesURL == "" && !inboundGiven(fs) {
		return usageErrorf("sources add: --changes-url, --inbound or both are required (for example: --changes-url https://erp.example/changes, or --inbound github --secret S)")
	}
	u, err := sf.update(fs)
	if err != nil {
		return err
	}
	in := client.SourceCreate{ID: *id, ChangesURL: sf.changesURL, Inbound: u.Inbound}
	if u.Interval != nil {
		in.Interval = *u.Interval
	}
	if u.ExpectedWindow != nil {
		in.ExpectedWindow = *u.ExpectedWindow
	}
	if u.Headers != nil {
		in.Headers = *u.Headers
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	src, err := cl.CreateSource(ctx, in)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	if err := sourceFields(src).print(c.stdout); err != nil {
		return err
	}
	return c.printIngestURL(cl, src, in.Inbound != nil)
}

// sources update ID [--changes-url] [--interval] [--expected-window] [--header] [--inbound …]
func (c *cli) sourcesUpdate(ctx context.Context, args []string) error {
	fs := newFlagSet("sources update", c.stderr)
	setSynopsis(fs, "hookstream sources update ID [--changes-url U] [--interval 1m] [--expected-window 15m] [--header 'Name: value']… [--inbound F --secret S …]")
	cf := addClientFlags(fs)
	sf := addSourceFlags(fs)
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	u, err := sf.update(fs)
	if err != nil {
		return err
	}
	if u == (client.SourceUpdate{}) {
		return usageErrorf("sources update: nothing to change; give at least one of --changes-url, --interval, --expected-window, --header, --inbound (for example: hookstream sources update %s --interval 5m)", id)
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	src, err := cl.UpdateSource(ctx, id, u)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	if err := sourceFields(src).print(c.stdout); err != nil {
		return err
	}
	return c.printIngestURL(cl, src, u.Inbound != nil)
}

func sourceFields(s *client.Source) fields {
	var f fields
	f.add("id", s.ID)
	f.addIf("changes url", s.ChangesURL)
	if s.ChangesURL != "" {
		f.add("interval", s.Interval.String())
		f.add("expected window", s.ExpectedWindow.String())
	}
	if len(s.Headers) > 0 {
		f.add("headers", strings.Join(s.Headers, ", ")+" (values never shown)")
	}
	if s.Inbound != nil {
		in := s.Inbound.Format
		if s.Inbound.Header != "" {
			in += ", signature in " + s.Inbound.Header
		}
		if s.Inbound.IDHeader != "" {
			in += ", id in " + s.Inbound.IDHeader
		}
		if len(s.Inbound.IDFrom) > 0 {
			in += ", id from " + strings.Join(s.Inbound.IDFrom, " : ")
		}
		f.add("inbound", in)
		f.addIf("event type", s.Inbound.Type)
		if s.Inbound.Secret != "" {
			f.add("inbound secret (shown only now)", s.Inbound.Secret)
		}
		if s.Inbound.PreviousSecretsExpireAt != nil {
			f.add("previous secret verifies until", whenPtr(s.Inbound.PreviousSecretsExpireAt))
		}
	}
	status := s.Status
	if s.StatusSince != nil {
		status += " since " + whenPtr(s.StatusSince)
	}
	f.add("status", status)
	f.addIf("last poll", whenPtr(s.LastPoll))
	f.addIf("last success", whenPtr(s.LastSuccess))
	if s.LastPush != nil {
		push := whenPtr(s.LastPush)
		if s.LastPushInstance != "" {
			push += " from " + s.LastPushInstance
		}
		f.add("last push", push)
	}
	if s.LastError != "" {
		f.add("last error", s.LastError+" ("+whenPtr(s.LastErrorAt)+")")
	}
	f.addIf("next poll", whenPtr(s.NextPoll))
	f.addIf("cursor", s.Cursor)
	if s.Failures > 0 {
		f.add("failures in a row", num(s.Failures))
	}
	if s.SkippedChanges > 0 {
		f.add("skipped changes", fmt.Sprint(s.SkippedChanges))
	}
	f.add("created", when(s.CreatedAt))
	f.add("updated", when(s.UpdatedAt))
	return f
}

// sources show ID
func (c *cli) sourcesShow(ctx context.Context, args []string) error {
	id, cf, cl, ctx, ans, err := c.idCommand(ctx, "sources show", args)
	if err != nil {
		return err
	}
	src, err := cl.Source(ctx, id)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	return sourceFields(src).print(c.stdout)
}

// sources rm ID
func (c *cli) sourcesRm(ctx context.Context, args []string) error {
	id, cf, cl, ctx, _, err := c.idCommand(ctx, "sources rm", args)
	if err != nil {
		return err
	}
	if err := cl.DeleteSource(ctx, id); err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return nil
	}
	_, err = fmt.Fprintf(c.stdout, "deleted source %s\n", id)
	return err
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
	return listCommand(c, ctx, cf, pf, "sources",
		func(cl *client.Client) func(context.Context, client.ListOptions) (*client.Page[client.Source], error) {
			return cl.ListSources
		},
		func(ss []client.Source) *table {
			t := newTable("ID", "STATUS", "CHANGES URL", "INBOUND", "INTERVAL", "LAST SUCCESS", "LAST ERROR")
			for _, s := range ss {
				in, interval := "", ""
				if s.Inbound != nil {
					in = s.Inbound.Format
				}
				if s.ChangesURL != "" {
					interval = s.Interval.String()
				}
				t.add(s.ID, s.Status, s.ChangesURL, in, interval, whenPtr(s.LastSuccess), short(s.LastError, 50))
			}
			return t
		})
}

// printIngestURL tells where the provider sends its webhooks, when the
// command set inbound settings.
func (c *cli) printIngestURL(cl *client.Client, src *client.Source, inbound bool) error {
	if !inbound {
		return nil
	}
	_, err := fmt.Fprintf(c.stdout, "\nThe provider sends its webhooks to:\n  %s\n", cl.IngestURL(src.ID))
	return err
}

// sources rotate-secret ID [--secret S]
func (c *cli) sourcesRotate(ctx context.Context, args []string) error {
	fs := newFlagSet("sources rotate-secret", c.stderr)
	setSynopsis(fs, "hookstream sources rotate-secret ID [--secret S]")
	cf := addClientFlags(fs)
	secret := fs.String("secret", "", "the provider's new secret (generated when not given)")
	if err := parseFlags(fs, args, c.env); err != nil {
		return err
	}
	id, err := exactlyOneArg(fs, "ID")
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx, ans := captureAnswers(ctx)
	src, err := cl.RotateSourceSecret(ctx, id, *secret)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	return sourceFields(src).print(c.stdout)
}
