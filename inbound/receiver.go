package inbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// ErrBadPush is what a *BadPushError is (errors.Is): a push whose signature
// verified but which cannot be made an event (its body is not a JSON
// object, its id or type header is missing or unusable, an id_from pointer
// finds nothing). The ingest route answers it 400.
var ErrBadPush = errors.New("bad push")

// BadPushError says what is wrong with a push, naming the header or the
// id_from pointer.
type BadPushError struct{ Msg string }

func (e *BadPushError) Error() string        { return e.Msg }
func (e *BadPushError) Is(target error) bool { return target == ErrBadPush }

func badPush(format string, args ...any) error {
	return &BadPushError{Msg: fmt.Sprintf(format, args...)}
}

// Receiver is one source's inbound settings: it verifies the source's
// pushes and reads each one's id, type and time. Build one per push (it is
// a few strings); Check it when the settings are stored.
type Receiver struct {
	// Format is the provider's format. Required.
	Format Format
	// Secrets are the secrets a push may be signed with: the current one
	// first, then those a rotation still accepts. At least one.
	Secrets []string
	// Header is hmac-sha256's signature header: required for it, refused
	// for the other formats, whose header is fixed.
	Header string
	// IDHeader is hmac-sha256's delivery-id header: required for it unless
	// IDFrom is set; refused for the other formats.
	IDHeader string
	// IDFrom, when set, are JSON pointers into the body whose values,
	// joined with ':', are the push's id instead of the id header's: so a
	// push and the provider's feed entry for the same object version can
	// share one event id. At most 8.
	IDFrom []string
	// Type is the event type of a push whose format names none: every
	// hmac-sha256 push, a standard push whose body has no usable "type".
	// Only for those two formats. Defaults to TypeDefault.
	Type string
	// Tolerance is how far a standard push's webhook-timestamp may be from
	// now. Defaults to ToleranceDefault (5 minutes).
	Tolerance time.Duration
	// MaxIDLength bounds the id Read returns, so that the event id built
	// from it fits streams.MaxIDLength. Defaults to streams.MaxIDLength.
	MaxIDLength int
}

// Check reports the first invalid setting, naming it as the JSON of a
// source's inbound does ("format: …", "secret: …", "id_from[1]: …"). It
// never repeats a secret.
func (r *Receiver) Check() error {
	if _, err := ParseFormat(string(r.Format)); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	if len(r.Secrets) == 0 {
		return errors.New("secret: required")
	}
	for i, s := range r.Secrets {
		if err := CheckSecret(r.Format, s); err != nil {
			if i == 0 {
				return fmt.Errorf("secret: %w", err)
			}
			return fmt.Errorf("secret: earlier secret %d: %w", i, err)
		}
	}
	hmacOnly := func(field, v string) error {
		if v != "" && r.Format != HMACSHA256 {
			return fmt.Errorf("%s: only for format %s (%s names its own)", field, HMACSHA256, r.Format)
		}
		return nil
	}
	if err := hmacOnly("header", r.Header); err != nil {
		return err
	}
	if err := hmacOnly("id_header", r.IDHeader); err != nil {
		return err
	}
	if r.Format == HMACSHA256 {
		if r.Header == "" {
			return fmt.Errorf("header: required for format %s: the header that holds the hex HMAC-SHA256 of the body", HMACSHA256)
		}
		if r.IDHeader == "" && len(r.IDFrom) == 0 {
			return fmt.Errorf("id_header: required for format %s unless id_from is given", HMACSHA256)
		}
	}
	for _, h := range []struct{ field, v string }{{"header", r.Header}, {"id_header", r.IDHeader}} {
		if h.v != "" {
			if err := checkHeaderName(h.v); err != nil {
				return fmt.Errorf("%s: %w", h.field, err)
			}
		}
	}
	if len(r.IDFrom) > maxIDFrom {
		return fmt.Errorf("id_from: at most %d pointers, got %d", maxIDFrom, len(r.IDFrom))
	}
	for i, p := range r.IDFrom {
		if err := checkPointer(p); err != nil {
			return fmt.Errorf("id_from[%d]: %w", i, err)
		}
	}
	if r.Type != "" {
		if r.Format != Standard && r.Format != HMACSHA256 {
			return fmt.Errorf("type: only for formats %s and %s (%s names the type of each push)", Standard, HMACSHA256, r.Format)
		}
		if err := streams.ValidateType(r.Type); err != nil {
			return fmt.Errorf("type: %s", strings.TrimPrefix(trimInvalid(err), "type: "))
		}
	}
	if r.Tolerance < 0 {
		return fmt.Errorf("tolerance: must not be negative, got %s", r.Tolerance)
	}
	return nil
}

// checkHeaderName accepts an RFC 9110 field name.
func checkHeaderName(h string) error {
	if len(h) > maxHeaderName {
		return fmt.Errorf("longer than %d characters", maxHeaderName)
	}
	for _, c := range []byte(h) {
		if !isTokenChar(c) {
			return fmt.Errorf("%.64q is not a valid header name", h)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// SignatureHeader is the header that carries the signature of r's pushes.
func (r *Receiver) SignatureHeader() string { return r.Format.signatureHeader(r.Header) }

// Signed reports (ErrSignature) a push whose signature headers are missing,
// so that it can be refused before its body is read.
func (r *Receiver) Signed(h http.Header) error {
	names := []string{r.SignatureHeader()}
	if r.Format == Standard {
		names = append(names, webhook.HeaderID, webhook.HeaderTimestamp)
	}
	for _, n := range names {
		if strings.TrimSpace(h.Get(n)) == "" {
			return fmt.Errorf("%w: %s: missing", ErrSignature, n)
		}
	}
	return nil
}

// Verify checks the signature of a push: its headers h and its raw body,
// exactly as received. Errors wrap ErrSignature.
func (r *Receiver) Verify(h http.Header, body []byte, now time.Time) error {
	switch r.Format {
	case Standard:
		keys := make([][]byte, 0, len(r.Secrets))
		for _, s := range r.Secrets {
			k, err := webhook.ParseSecret(s)
			if err != nil {
				return fmt.Errorf("%w: secret: %w", ErrSignature, err)
			}
			keys = append(keys, k)
		}
		if err := webhook.VerifyRequest(h, body, now, tolerance(r.Tolerance), keys...); err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		return nil
	case Discourse, GitHub, HMACSHA256:
		keys := make([][]byte, len(r.Secrets))
		for i, s := range r.Secrets {
			keys[i] = []byte(s)
		}
		header := r.SignatureHeader()
		return verifyHex(header, h.Get(header), r.Format != HMACSHA256, body, keys)
	}
	return fmt.Errorf("%w: unknown format %.32q", ErrSignature, r.Format)
}

// Push is what Read finds in a verified push.
type Push struct {
	// ID is the provider's id of the push (not yet prefixed with the
	// source): the format's id header, or the id_from values joined by ':'.
	ID string
	// Type is the event type.
	Type string
	// Time is when it happened: a standard payload's timestamp, else now.
	Time time.Time
	// Instance is the X-Discourse-Instance of a discourse push (the forum's
	// base URL), cut to 256 bytes; "" otherwise.
	Instance string
}

// Read makes an event's id, type and time of a push whose signature
// Verify accepted. The body must be a JSON object (its size is the
// caller's to bound). Errors are *BadPushError.
func (r *Receiver) Read(h http.Header, body []byte, now time.Time) (Push, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return Push{}, badPush("body: must be a JSON object")
	}
	push := Push{Time: now}
	var err error
	if push.ID, err = r.readID(h, trimmed); err != nil {
		return Push{}, err
	}
	switch r.Format {
	case Discourse:
		push.Type, err = headerType("discourse", HeaderDiscourseEvent, h)
		push.Instance = cutText(strings.TrimSpace(h.Get(HeaderDiscourseInstance)), maxInstance)
	case GitHub:
		push.Type, err = headerType("github", HeaderGitHubEvent, h)
	case Standard:
		push.Type, push.Time = r.standardPayload(trimmed, now)
	default:
		push.Type = r.typeOrDefault()
	}
	if err != nil {
		return Push{}, err
	}
	return push, nil
}

func (r *Receiver) typeOrDefault() string {
	if r.Type != "" {
		return r.Type
	}
	return TypeDefault
}

// readID is the push's id: the id_from values, or the format's id header.
func (r *Receiver) readID(h http.Header, body []byte) (string, error) {
	maxLen := r.MaxIDLength
	if maxLen <= 0 {
		maxLen = streams.MaxIDLength
	}
	var id, from string
	if len(r.IDFrom) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return "", badPush("body: must be a JSON object")
		}
		parts := make([]string, len(r.IDFrom))
		for i, p := range r.IDFrom {
			v, err := resolvePointer(doc, p)
			if err != nil {
				return "", badPush("id_from[%d]: %v", i, err)
			}
			parts[i] = v
		}
		id, from = strings.Join(parts, ":"), "id_from"
	} else {
		from = r.Format.idHeader(r.IDHeader)
		id = strings.TrimSpace(h.Get(from))
		if id == "" {
			return "", badPush("%s: required (the delivery id)", from)
		}
	}
	if len(id) > maxLen {
		return "", badPush("%s: the id is %d bytes, over the %d this source's event ids leave", from, len(id), maxLen)
	}
	if err := streams.ValidateID(id); err != nil {
		return "", badPush("%s: %s", from, strings.TrimPrefix(trimInvalid(err), "id: "))
	}
	return id, nil
}

// headerType is prefix + "." + the event name header carries, made a valid
// event type (lower case; characters other than letters, digits, '_' and
// '.' become '_').
func headerType(prefix, header string, h http.Header) (string, error) {
	v := strings.TrimSpace(h.Get(header))
	if v == "" {
		return "", badPush("%s: required (the event name)", header)
	}
	if len(v) > maxTypeHeader {
		return "", badPush("%s: longer than %d characters", header, maxTypeHeader)
	}
	t := prefix + "." + typeWord(v)
	if err := streams.ValidateType(t); err != nil {
		return "", badPush("%s: %.64q cannot be made an event type", header, v)
	}
	return t, nil
}

// typeWord maps s onto the characters of an event type.
func typeWord(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_'
	}, s)
}

// standardPayload reads a Standard Webhooks payload's "type" and
// "timestamp" ({"type", "timestamp", "data"}). A type that is absent, not a
// string, or cannot be made a valid event type gives the source's Type
// (the push is not refused: its body, type included, is kept as data); a
// timestamp that is not RFC 3339 gives now.
func (r *Receiver) standardPayload(body []byte, now time.Time) (string, time.Time) {
	var p struct {
		Type      any `json:"type"`
		Timestamp any `json:"timestamp"`
	}
	typ, at := r.typeOrDefault(), now
	if json.Unmarshal(body, &p) != nil {
		return typ, at
	}
	if s, ok := p.Type.(string); ok && s != "" && len(s) <= streams.MaxTypeLength {
		if w := typeWord(s); streams.ValidateType(w) == nil {
			typ = w
		}
	}
	if s, ok := p.Timestamp.(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			at = t.UTC()
		}
	}
	return typ, at
}

// trimInvalid drops streams' ": invalid event" suffix.
func trimInvalid(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+streams.ErrInvalidEvent.Error())
}

// cutText cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
