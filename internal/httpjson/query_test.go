package httpjson_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hookstream/hookstream/internal/httpjson"
)

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query string
		allowed     []string
		want        string // the 400's message, "" for accepted
	}{
		{name: "none given", query: "", allowed: httpjson.PageParams},
		{name: "known ones", query: "limit=5&cursor=x", allowed: httpjson.PageParams},
		{name: "empty value of a known one", query: "cursor=", allowed: httpjson.PageParams},
		{name: "misspelt filter", query: "endpoint_id=ep_1", allowed: []string{"endpoint", "limit", "cursor"},
			want: "endpoint_id: unknown query parameter; this route takes endpoint, limit, cursor"},
		{name: "route that takes none", query: "x=1", want: "x: unknown query parameter; this route takes none"},
		{name: "first unknown by name", query: "zz=1&aa=2", allowed: httpjson.PageParams,
			want: "aa: unknown query parameter; this route takes limit, cursor"},
		{name: "given twice", query: "limit=1&limit=2", allowed: httpjson.PageParams, want: "limit: given 2 times; give it once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "/v1/things?"+tt.query, nil)
			err := httpjson.CheckQuery(req, tt.allowed...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckQuery(%q) = %v, want nil", tt.query, err)
				}
				return
			}
			rec := httptest.NewRecorder()
			httpjson.Fail(rec, err)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", rec.Code)
			}
			if msg := errorBody(t, rec); msg != tt.want {
				t.Errorf("error %q, want %q", msg, tt.want)
			}
		})
	}
}

func TestFallback(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	routes := []httpjson.Route{
		{Method: http.MethodGet, Pattern: "/v1/things", Handler: ok},
		{Method: http.MethodPost, Pattern: "/v1/things", Handler: ok},
		{Method: http.MethodGet, Pattern: "/v1/things/{id}", Handler: ok},
		{Method: http.MethodDelete, Pattern: "/v1/things/{id}", Handler: ok},
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	mux.Handle("/v1/", httpjson.Fallback(routes))
	tests := []struct {
		method, path string
		code         int
		allow, msg   string
	}{
		{method: http.MethodGet, path: "/v1/things", code: http.StatusNoContent},
		{method: http.MethodPut, path: "/v1/things", code: http.StatusMethodNotAllowed, allow: "GET, HEAD, POST",
			msg: "method PUT not allowed on /v1/things; allowed: GET, HEAD, POST"},
		{method: http.MethodPatch, path: "/v1/things/t1", code: http.StatusMethodNotAllowed, allow: "GET, HEAD, DELETE",
			msg: "method PATCH not allowed on /v1/things/t1; allowed: GET, HEAD, DELETE"},
		{method: http.MethodGet, path: "/v1/nothing", code: http.StatusNotFound, msg: "no route GET /v1/nothing"},
		{method: http.MethodGet, path: "/v1/things/t1/more", code: http.StatusNotFound, msg: "no route GET /v1/things/t1/more"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.code {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, rec.Code, tt.code)
			continue
		}
		if got := rec.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if tt.msg != "" {
			if msg := errorBody(t, rec); msg != tt.msg {
				t.Errorf("%s %s: error %q, want %q", tt.method, tt.path, msg, tt.msg)
			}
		}
	}
}
