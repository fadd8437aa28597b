// Package openapi holds hookstream's OpenAPI 3.1 document, describing every
// /v1 route, POST /ingest/{source} and the health probes, and serves it at
// GET /openapi.json. The document is written by hand, beside the handlers it
// describes; cmd/hookstream's TestOpenAPIMatchesMountedRoutes fails when it
// and the routes the server mounts disagree in either direction, or when an
// answer of a real handler does not fit it.
package openapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// Path is where the document is served.
const Path = "/openapi.json"

//go:embed openapi.json
var document []byte

// Document returns the OpenAPI document (JSON); the caller may keep it but
// must not change it.
func Document() []byte { return document }

// Handler serves the document. It needs no token: the document holds no
// secret, and a client needs it to find out how to authenticate.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(document)))
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(document)
	})
}
