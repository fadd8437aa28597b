package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hookstream/hookstream/client"
	"github.com/hookstream/hookstream/netguard"
)

// Defaults of the client flags.
const (
	// ServerDefault is the API every client command talks to unless
	// --server (or HOOKSTREAM_SERVER) says otherwise: where `hookstream
	// serve` listens.
	ServerDefault = "http://127.0.0.1:8080"
	// ClientTimeoutDefault bounds one API request.
	ClientTimeoutDefault = 60 * time.Second
)

// listPageAll is the page size --all asks for when no --limit is given: the
// API's maximum, to follow as few cursors as possible.
const listPageAll = 1000

// clientFlags are the flags of every command that talks to the API.
type clientFlags struct {
	server string
	token  string
	json   bool
}

// addClientFlags adds --server and --token, read from HOOKSTREAM_SERVER and
// HOOKSTREAM_TOKEN when not given (the only environment names a client
// command reads: HOOKSTREAM_API_TOKEN is the server's --api-token), their
// old names --api and --api-token, and --json.
func addClientFlags(fs *flag.FlagSet) *clientFlags {
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", ServerDefault, "base URL of the hookstream API")
	fs.StringVar(&cf.token, "token", "", "bearer token for the API (the server's --api-token)")
	fs.BoolVar(&cf.json, "json", false, "print the API's JSON answers instead of tables, for scripts")
	setEnvTwin(fs, "server", envServer)
	setEnvTwin(fs, "token", envToken)
	addAlias(fs, "api", "server")
	addAlias(fs, "api-token", "token")
	return cf
}

// client is the API client the flags describe.
func (cf *clientFlags) client() (*client.Client, error) {
	if strings.TrimSpace(cf.server) == "" {
		return nil, usageErrorf("--server: must not be empty (for example: --server %s)", ServerDefault)
	}
	c, err := client.New(cf.server,
		client.WithToken(cf.token),
		client.WithUserAgent("hookstream-cli/"+version),
		client.WithHTTPClient(&http.Client{Timeout: ClientTimeoutDefault}))
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "base URL: ")
		return nil, usageErrorf("--server: %s (for example: --server %s)", netguard.RedactText(msg), ServerDefault)
	}
	return c, nil
}

// notRunningError is a refused connection: nothing listens at the API address.
type notRunningError struct {
	base string
	err  error
}

func (e *notRunningError) Error() string {
	return "connection refused: is `hookstream serve` running at " + netguard.RedactURL(e.base) + "? (give --server or set " + envServer + ")"
}

func (e *notRunningError) Unwrap() error { return e.err }

// redactedError shows err with the URLs it names redacted.
type redactedError struct{ err error }

func (e redactedError) Error() string { return netguard.RedactError(e.err) }
func (e redactedError) Unwrap() error { return e.err }

// apiErr is what the CLI says about an error of a client call: a refused
// connection names the address and the flag; a 401 says how to give a
// token; a URL's credentials never show.
func apiErr(cl *client.Client, err error) error {
	var ce *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		if ce.Status == http.StatusUnauthorized {
			return &client.Error{Status: ce.Status, Message: ce.Message + " (give --token or set " + envToken + ")", RetryAfter: ce.RetryAfter}
		}
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return &notRunningError{base: cl.BaseURL(), err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return redactedError{err}
}

// pageFlags are the flags of every list command.
type pageFlags struct {
	limit  int
	cursor string
	all    bool
}

func addPageFlags(fs *flag.FlagSet) *pageFlags {
	pf := &pageFlags{}
	fs.IntVar(&pf.limit, "limit", 0, "items per page, 1 to 1000 (the API's default when not given: 100)")
	fs.StringVar(&pf.cursor, "cursor", "", "cursor from a previous page's next_cursor")
	fs.BoolVar(&pf.all, "all", false, "follow next_cursor and print every page's items")
	return pf
}

func (pf *pageFlags) check() error {
	if pf.limit < 0 || pf.limit > listPageAll {
		return usageErrorf("--limit: must be from 1 to %d, got %d (for example: --limit 50)", listPageAll, pf.limit)
	}
	return nil
}

func (pf *pageFlags) options() client.ListOptions {
	o := client.ListOptions{Limit: pf.limit, Cursor: pf.cursor}
	if pf.all && o.Limit == 0 {
		o.Limit = listPageAll
	}
	return o
}
