package inbound

import (
	"fmt"
	"strings"
	"time"

	"github.com/hookstream/hookstream/webhook"
)

// Format is how a provider signs its webhooks and names their id and type.
type Format string

// The formats of DESIGN.md's "Inbound webhooks".
const (
	Standard   Format = "standard"
	Discourse  Format = "discourse"
	GitHub     Format = "github"
	HMACSHA256 Format = "hmac-sha256"
)

// Formats lists every Format, in the order errors name them.
var Formats = []Format{Standard, Discourse, GitHub, HMACSHA256}

// Headers the providers send.
const (
	HeaderDiscourseSignature = "X-Discourse-Event-Signature"
	HeaderDiscourseID        = "X-Discourse-Event-Id"
	HeaderDiscourseEvent     = "X-Discourse-Event"
	HeaderDiscourseInstance  = "X-Discourse-Instance"
	HeaderGitHubSignature    = "X-Hub-Signature-256"
	HeaderGitHubDelivery     = "X-GitHub-Delivery"
	HeaderGitHubEvent        = "X-GitHub-Event"
)

// Defaults.
const (
	// ToleranceDefault is how far a standard push's webhook-timestamp may be
	// from the receiver's clock: the Standard Webhooks 5 minutes.
	ToleranceDefault = webhook.DefaultTolerance
	// TypeDefault is the event type of a push whose format names none (an
	// hmac-sha256 push, a standard push without a type) when the source
	// sets no type. Not under webhook.*, which is hookstream's own.
	TypeDefault = "inbound.received"
)

// Limits of a Receiver's settings and of what a push may put into an event.
const (
	maxHeaderName  = 128
	maxIDFrom      = 8
	maxPointer     = 256
	maxInstance    = 256
	maxTypeHeader  = 100 // leaves room for "discourse." within streams.MaxTypeLength
	sigPrefix      = "sha256="
	sha256HexBytes = 64
)

// ParseFormat returns the Format named s; its error names the valid ones.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("must be one of %s; got %.64q", strings.Join(names, ", "), s)
}

// signatureHeader is the header that carries f's signature, given the
// configured one for hmac-sha256.
func (f Format) signatureHeader(configured string) string {
	switch f {
	case Standard:
		return webhook.HeaderSignature
	case Discourse:
		return HeaderDiscourseSignature
	case GitHub:
		return HeaderGitHubSignature
	}
	return configured
}

// idHeader is the header that carries f's delivery id.
func (f Format) idHeader(configured string) string {
	switch f {
	case Standard:
		return webhook.HeaderID
	case Discourse:
		return HeaderDiscourseID
	case GitHub:
		return HeaderGitHubDelivery
	}
	return configured
}

// tolerance is d, or ToleranceDefault when d is not positive.
func tolerance(d time.Duration) time.Duration {
	if d <= 0 {
		return ToleranceDefault
	}
	return d
}
