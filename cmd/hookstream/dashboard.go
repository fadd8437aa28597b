package main

import "net/http"

// dashboardPages returns the dashboard served at / by serve and api, or nil
// for none (those paths are then 404).
func dashboardPages(f *serverFlags) func(v1 http.Handler) http.Handler {
	return nil
}
