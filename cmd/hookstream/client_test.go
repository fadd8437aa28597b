package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/httpjson"
)

// The client against the real API server's routing and bearer-token check.
func TestClientAgainstAPIServer(t *testing.T) {
	t.Parallel()
	srv, err := api.New(api.Config{
		Addr:  "127.0.0.1:0",
		Token: "s3cret",
		Routes: []httpjson.Route{{
			Method:  http.MethodGet,
			Pattern: "/v1/events/{id}",
			Handler: func(w http.ResponseWriter, r *http.Request) {
				httpjson.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ctx := context.Background()

	r := runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": hs.URL, "HOOKSTREAM_TOKEN": "s3cret"}, "", "events", "show", "crm:42/7", "--json")
	if r.code != 0 || !jsonEqual(t, r.stdout, `{"id":"crm:42/7"}`) {
		t.Errorf("with the token: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": hs.URL}, "", "events", "show", "e1")
	wantOneErrorLine(t, r, 1, "401: authorization: a valid bearer token is required")

	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_SERVER": hs.URL + "/", "HOOKSTREAM_TOKEN": "s3cret"}, "", "events", "show", "e1")
	if r.code != 0 {
		t.Errorf("base URL with a trailing slash: code %d, stderr %q", r.code, r.stderr)
	}

	r = runCLI(t, ctx, map[string]string{"HOOKSTREAM_TOKEN": "s3cret"}, "", "events", "show", "e1", "--api", strings.TrimPrefix(hs.URL, "http://"))
	if r.code != 0 {
		t.Errorf("base URL without a scheme: code %d, stderr %q", r.code, r.stderr)
	}
}
