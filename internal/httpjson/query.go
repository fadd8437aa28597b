package httpjson

import (
	"net/http"
	"slices"
	"strings"
)

// PageParams are the query parameters every list route takes.
var PageParams = []string{"limit", "cursor"}

// CheckQuery refuses a query parameter that is not one of allowed, and one
// given twice, with a 400 naming it: a misspelt filter (?endpoint_id= for
// ?endpoint=) would otherwise be ignored silently and answer every record.
// Each handler calls it first, with the names it reads.
func CheckQuery(r *http.Request, allowed ...string) error {
	q := r.URL.Query()
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	// Sorted, so that the error names the same parameter every time.
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return BadRequest("%s: unknown query parameter; this route takes none", name)
			}
			return BadRequest("%s: unknown query parameter; this route takes %s", name, strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 {
			return BadRequest("%s: given %d times; give it once", name, len(q[name]))
		}
	}
	return nil
}

// methods are the methods Fallback tries when a path matched no route.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Fallback answers a request that no route of routes took: 405 with an
// Allow header when its path is a route's under other methods, 404
// otherwise, both as {"error": …}. A server whose catch-all pattern ("/v1/")
// is less specific than its routes mounts it there: net/http's own 405
// never happens then, because the catch-all matches every method.
func Fallback(routes []Route) http.HandlerFunc {
	probe := http.NewServeMux()
	for _, r := range routes {
		probe.Handle(r.Method+" "+r.Pattern, http.NotFoundHandler())
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			req := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
			if _, pattern := probe.Handler(req); pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			WriteError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", "))
	}
}

// Query wraps h so that a request with a query parameter outside allowed is
// a 400 (CheckQuery) before h runs: a route table names the parameters of
// each route where it names the route.
func Query(h http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := CheckQuery(r, allowed...); err != nil {
			Fail(w, err)
			return
		}
		h(w, r)
	}
}
