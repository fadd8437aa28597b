package main

import (
	"net/http"

	"github.com/hookstream/hookstream/dashboard"
)

// dashboardPages returns the dashboard served at / by serve and api: pages
// that call the /v1 API in-process with f.apiToken, behind a login with
// that token when one is set.
//
// The API listens on plain HTTP; the session cookie is marked Secure when
// the request came over TLS, or through a TLS-terminating proxy that sets
// X-Forwarded-Proto: https.
func dashboardPages(f *serverFlags) func(v1 http.Handler) http.Handler {
	return dashboard.Pages(dashboard.Config{Token: f.apiToken, Version: version})
}
