package main

import "net/http"

func eventsCommands() []*command {
	return []*command{
		// Event ids may hold ':' (a source's changes are "<source>:<change id>")
		// and anything else a publisher chose: simpleCall path-escapes them.
		{name: "show", summary: "show an event and its delivery status per endpoint", run: simpleCall("events show", http.MethodGet, "/v1/events/", "")},
	}
}
