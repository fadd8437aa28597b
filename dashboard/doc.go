// Package dashboard owns hookstream's web pages at /: the overview of
// endpoints, dead letters and sources, one endpoint with its attempt log,
// the dead-letter queue with replay, an event by id, and the sources.
//
// The pages are server-rendered with html/template; templates, CSS and a
// little JavaScript (local times, replay progress) are embedded, so the
// dashboard works offline and needs no build step. It is a client of the
// /v1 JSON API, called in-process through the handler the API server hands
// over: it reads no stream or bucket itself, so it stays right when the
// internals change.
//
// With a token configured, a login form exchanges the token for a signed
// session cookie (HttpOnly, SameSite=Strict, Secure over TLS); every
// state-changing form carries a CSRF token bound to the session, and
// cross-origin POSTs are refused. Without a token the pages open directly
// (the API then listens on loopback only), with the same CSRF protection.
package dashboard
