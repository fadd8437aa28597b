package endpoints_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/endpoints"
)

// Query parameters a route does not take, and cursors no list returned, are
// a 400 naming them: ignored, they would answer something else than asked.
func TestRoutesRefuseUnknownQueryAndBadCursor(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	ep := b.create(t, map[string]any{})
	id := ep["id"].(string)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/v1/endpoints?endpoint_id=x", "endpoint_id: unknown query parameter; this route takes limit, cursor"},
		{http.MethodGet, "/v1/endpoints?cursor=a.b", `cursor: "a.b" is not a cursor this list returned`},
		{http.MethodGet, "/v1/endpoints?limit=2&limit=3", "limit: given 2 times; give it once"},
		{http.MethodGet, "/v1/endpoints/" + id + "?verbose=1", "verbose: unknown query parameter; this route takes none"},
		{http.MethodPatch, "/v1/endpoints/" + id + "?force=1", "force: unknown query parameter; this route takes none"},
		{http.MethodPost, "/v1/endpoints/" + id + "/disable?reason=x", "reason: unknown query parameter; this route takes none"},
		{http.MethodGet, "/v1/endpoints/" + id + "/attempts?since=1h", "since: unknown query parameter; this route takes limit, cursor"},
		{http.MethodGet, "/v1/endpoints/" + id + "/attempts?cursor=latest", `cursor: "latest" is not a cursor this list returned`},
	} {
		var body any
		if tc.method != http.MethodGet {
			body = map[string]any{}
		}
		code, raw := b.do(t, tc.method, tc.path, body)
		var m map[string]string
		_ = json.Unmarshal(raw, &m)
		if code != http.StatusBadRequest || m["error"] != tc.want {
			t.Errorf("%s %s = %d %s, want 400 %q", tc.method, tc.path, code, raw, tc.want)
		}
	}
	// The endpoint was not changed by the refused requests.
	if got := b.doJSON(t, http.MethodGet, "/v1/endpoints/"+id, nil, http.StatusOK); got["status"] != "healthy" {
		t.Errorf("after refused requests the endpoint is %v, want healthy", got["status"])
	}
	// A cursor the list returned is taken.
	list := b.doJSON(t, http.MethodGet, "/v1/endpoints?limit=1&cursor="+id, nil, http.StatusOK)
	if items := list["items"].([]any); len(items) != 0 {
		t.Errorf("after the only endpoint's cursor: %d items, want 0", len(items))
	}
	if !strings.HasPrefix(id, "ep_") {
		t.Errorf("id %q", id)
	}
}
