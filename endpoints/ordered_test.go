package endpoints_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/endpoints"
	"github.com/hookstream/hookstream/streams"
)

// An ordered endpoint gets 16 lanes unless told; partitions are refused
// out of range or on an unordered endpoint; "ordered" cannot change after
// creation; partitions change only while the endpoint holds no delivery.
func TestOrderedEndpointFields(t *testing.T) {
	t.Parallel()
	b := setup(t, endpoints.Config{})
	ep := b.create(t, map[string]any{"ordered": true})
	id := ep["id"].(string)
	if ep["ordered"] != true || ep["partitions"] != float64(streams.DefaultPartitions) {
		t.Fatalf("created %v, want ordered with %d partitions", ep, streams.DefaultPartitions)
	}
	plain := b.create(t, map[string]any{})["id"].(string)
	for _, tc := range []struct {
		method, path string
		body         map[string]any
		code         int
		want         string
	}{
		{http.MethodPost, "/v1/endpoints", map[string]any{"url": "https://example.com/h", "event_types": []string{"*"}, "partitions": 4}, 400, "partitions: only an ordered endpoint"},
		{http.MethodPost, "/v1/endpoints", map[string]any{"url": "https://example.com/h", "event_types": []string{"*"}, "ordered": true, "partitions": 257}, 400, "partitions: must be from 1 to 256"},
		{http.MethodPatch, "/v1/endpoints/" + id, map[string]any{"ordered": false}, 400, "ordered: cannot be changed"},
		{http.MethodPatch, "/v1/endpoints/" + plain, map[string]any{"ordered": true}, 400, "ordered: cannot be changed"},
		{http.MethodPatch, "/v1/endpoints/" + plain, map[string]any{"partitions": 4}, 400, "partitions: only an ordered endpoint"},
		{http.MethodPatch, "/v1/endpoints/" + id, map[string]any{"partitions": 0}, 400, "partitions: must be from 1"},
	} {
		code, raw := b.do(t, tc.method, tc.path, tc.body)
		var m map[string]string
		_ = json.Unmarshal(raw, &m)
		if code != tc.code || !strings.HasPrefix(m["error"], tc.want) {
			t.Errorf("%s %s %v = %d %s, want %d %q", tc.method, tc.path, tc.body, code, raw, tc.code, tc.want)
		}
	}
	if got := b.doJSON(t, http.MethodPatch, "/v1/endpoints/"+id, map[string]any{"partitions": 8, "ordered": true}, http.StatusOK); got["partitions"] != float64(8) {
		t.Fatalf("PATCH partitions 8 without a backlog = %v", got)
	}
	// A delivery waiting in a lane: the lanes may not change now.
	if _, err := b.env.JS.Publish(context.Background(), streams.LaneSubject(id, 3), []byte("x")); err != nil {
		t.Fatal(err)
	}
	code, raw := b.do(t, http.MethodPatch, "/v1/endpoints/"+id, map[string]any{"partitions": 32})
	if code != http.StatusConflict || !strings.Contains(string(raw), "partitions: the endpoint holds 1 undelivered") {
		t.Fatalf("PATCH partitions with a backlog = %d %s, want 409 naming partitions", code, raw)
	}
	if got := b.doJSON(t, http.MethodGet, "/v1/endpoints/"+id, nil, http.StatusOK); got["partitions"] != float64(8) {
		t.Fatalf("after the refused change: %v", got)
	}
}
