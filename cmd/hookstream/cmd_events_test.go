package main

import "testing"

func TestEventsShow(t *testing.T) {
	t.Parallel()
	runCallCases(t, []callCase{
		{
			name:   "plain id",
			args:   []string{"events", "show", "evt_1"},
			method: "GET", path: "/v1/events/evt_1",
		},
		{
			// A source's changes are published as <source>:<change id>.
			name:   "id with a colon",
			args:   []string{"events", "show", "crm:42"},
			method: "GET", path: "/v1/events/crm:42",
		},
		{
			name:   "id with a slash, a space and a percent sign",
			args:   []string{"events", "show", "a/b c%"},
			method: "GET", path: "/v1/events/a%2Fb%20c%25",
		},
	})
}
