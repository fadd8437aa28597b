package inbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// checkPointer checks a JSON pointer (RFC 6901) that id_from may name: it
// must point into the document ("" would be the whole body, never a scalar)
// and use only the escapes ~0 and ~1.
func checkPointer(p string) error {
	switch {
	case p == "":
		return errors.New(`must point into the body (start with "/"), got ""`)
	case p[0] != '/':
		return fmt.Errorf(`%.64q must start with "/"`, p)
	case len(p) > maxPointer:
		return fmt.Errorf("longer than %d characters", maxPointer)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf(`%.64q: "~" must be followed by 0 or 1`, p)
		}
	}
	return nil
}

// resolvePointer finds pointer p (checked by checkPointer) in doc, a body
// decoded with UseNumber, and returns its value as id text: a string as it
// is, a number as written, true or false. Anything else (absent, null, an
// object or an array, an empty string) is an error saying so.
func resolvePointer(doc any, p string) (string, error) {
	cur := doc
	for tok := range strings.SplitSeq(p[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return "", fmt.Errorf("%.64q is not in the body", p)
			}
			cur = next
		case []any:
			i, err := arrayIndex(tok)
			if err != nil || i >= len(v) {
				return "", fmt.Errorf("%.64q is not in the body", p)
			}
			cur = v[i]
		default:
			return "", fmt.Errorf("%.64q is not in the body", p)
		}
	}
	switch v := cur.(type) {
	case string:
		if v == "" {
			return "", fmt.Errorf("%.64q is an empty string", p)
		}
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	case nil:
		return "", fmt.Errorf("%.64q is null", p)
	case map[string]any:
		return "", fmt.Errorf("%.64q is an object, not a string or number", p)
	default:
		return "", fmt.Errorf("%.64q is an array, not a string or number", p)
	}
}

// arrayIndex reads an RFC 6901 array index: decimal, no sign, no leading
// zero.
func arrayIndex(tok string) (int, error) {
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, errors.New("not an index")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, errors.New("not an index")
		}
	}
	return strconv.Atoi(tok)
}
