package endpoints

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hookstream/hookstream/internal/httpjson"
	"github.com/hookstream/hookstream/netguard"
	"github.com/hookstream/hookstream/streams"
	"github.com/hookstream/hookstream/webhook"
)

// inputError is a 400 naming the field that also keeps its cause, so that Go
// callers can test it with errors.Is (netguard.ErrForbidden,
// webhook.ErrInvalidSecret) while httpjson.Fail answers it 400.
type inputError struct {
	he    *httpjson.Error
	cause error
}

func (e *inputError) Error() string   { return e.he.Msg }
func (e *inputError) Unwrap() []error { return []error{e.he, e.cause} }

// badInput is a 400 with msg, wrapping cause when there is one.
func badInput(cause error, format string, args ...any) error {
	he := httpjson.BadRequest(format, args...)
	if cause == nil {
		return he
	}
	return &inputError{he: he, cause: cause}
}

func checkURL(u string, allowPrivate bool) error {
	switch {
	case u == "":
		return badInput(nil, "url: required")
	case utf8.RuneCountInString(u) > maxURLLength:
		return badInput(nil, "url: longer than %d characters", maxURLLength)
	}
	if err := netguard.CheckURL(u, allowPrivate); err != nil {
		// netguard's messages already start with "url: " and never repeat
		// the URL, which may carry credentials.
		return badInput(err, "%s", err.Error())
	}
	return nil
}

// checkEventTypes validates every type filter, naming its index, and returns
// them with duplicates removed (first occurrence kept).
func checkEventTypes(types []string, max int) ([]string, error) {
	if len(types) == 0 {
		return nil, badInput(nil, "event_types: at least one type filter is required")
	}
	out := make([]string, 0, len(types))
	seen := make(map[string]bool, len(types))
	for i, f := range types {
		if err := streams.ValidateTypeFilter(f); err != nil {
			return nil, badInput(err, "event_types[%d]: %s", i, filterError(err))
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) > max {
		return nil, badInput(nil, "event_types: at most %d type filters, got %d", max, len(out))
	}
	return out, nil
}

// filterError is ValidateTypeFilter's message without its own field name and
// the sentinel's text: the caller names the field.
func filterError(err error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+streams.ErrInvalidEvent.Error())
	return strings.TrimPrefix(msg, "type: ")
}

func checkSecret(s string) error {
	if _, err := webhook.ParseSecret(s); err != nil {
		// ParseSecret's message never contains the secret.
		return badInput(err, "secret: %s", err.Error())
	}
	return nil
}

func checkDescription(d string) error {
	if n := utf8.RuneCountInString(d); n > maxDescriptionLength {
		return badInput(nil, "description: longer than %d characters (%d)", maxDescriptionLength, n)
	}
	return nil
}

func checkRateLimit(r float64) error {
	// Written so that NaN fails too.
	if !(r >= 0 && r <= maxRateLimit) {
		return badInput(nil, "rate_limit: must be from 0 (no limit) to %d per second, got %v", maxRateLimit, r)
	}
	return nil
}

func checkConcurrency(c int) error {
	if c < 0 || c > maxConcurrency {
		return badInput(nil, "concurrency: must be from 0 (the default, %d) to %d, got %d", ConcurrencyDefault, maxConcurrency, c)
	}
	return nil
}

func checkPartitions(p int) error {
	if p < 1 || p > streams.MaxPartitions {
		return badInput(nil, "partitions: must be from 1 to %d, got %d", streams.MaxPartitions, p)
	}
	return nil
}

// checkCreate validates in and returns it normalised (type filters
// de-duplicated). An absent secret is left empty for the caller to generate.
func (r *Registry) checkCreate(in CreateInput) (CreateInput, error) {
	if err := checkURL(in.URL, r.cfg.AllowPrivate); err != nil {
		return in, err
	}
	types, err := checkEventTypes(in.EventTypes, r.cfg.MaxEventTypes)
	if err != nil {
		return in, err
	}
	in.EventTypes = types
	if in.Secret != "" {
		if err := checkSecret(in.Secret); err != nil {
			return in, err
		}
	}
	if err := firstErr(checkDescription(in.Description), checkRateLimit(in.RateLimit), checkConcurrency(in.Concurrency)); err != nil {
		return in, err
	}
	switch {
	case !in.Ordered && in.Partitions != 0:
		return in, badInput(nil, "partitions: only an ordered endpoint has partitions (set \"ordered\": true)")
	case in.Ordered && in.Partitions == 0:
		in.Partitions = streams.DefaultPartitions
	case in.Ordered:
		if err := checkPartitions(in.Partitions); err != nil {
			return in, err
		}
	}
	return in, nil
}

// firstErr returns the first non-nil error: one bad field is answered at a
// time, in the order of the body's fields.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkUpdate validates the fields in sets and returns in normalised.
func (r *Registry) checkUpdate(in UpdateInput) (UpdateInput, error) {
	if in.URL != nil {
		if err := checkURL(*in.URL, r.cfg.AllowPrivate); err != nil {
			return in, err
		}
	}
	if in.EventTypes != nil {
		types, err := checkEventTypes(*in.EventTypes, r.cfg.MaxEventTypes)
		if err != nil {
			return in, err
		}
		in.EventTypes = &types
	}
	if in.Description != nil {
		if err := checkDescription(*in.Description); err != nil {
			return in, err
		}
	}
	if in.RateLimit != nil {
		if err := checkRateLimit(*in.RateLimit); err != nil {
			return in, err
		}
	}
	if in.Concurrency != nil {
		if err := checkConcurrency(*in.Concurrency); err != nil {
			return in, err
		}
	}
	if in.Partitions != nil {
		if err := checkPartitions(*in.Partitions); err != nil {
			return in, err
		}
	}
	return in, nil
}

// notFound is the error of an unknown or deleted endpoint.
func notFound(id string) error {
	return fmt.Errorf("endpoint %s: %w", id, httpjson.ErrNotFound)
}
