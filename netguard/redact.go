package netguard

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// redacted stands in for every hidden part of a URL.
const redacted = "***"

// RedactURL returns raw with its user name, password and query values
// hidden (http://***:***@host/hook?token=***): URLs are shown in logs,
// attempt logs and dead-letter records that any dlq.> subscriber reads, and
// credentials ride in all three places. Query names are kept, so the
// operator can still tell the URLs apart. A URL that does not parse is
// hidden whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	return redactParsed(u)
}

func redactParsed(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(redacted, redacted)
		} else {
			c.User = url.User(redacted)
		}
	}
	if c.RawQuery != "" {
		var b strings.Builder
		for i, part := range strings.Split(c.RawQuery, "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			name, _, hasValue := strings.Cut(part, "=")
			b.WriteString(name)
			if hasValue {
				b.WriteString("=" + redacted)
			}
		}
		c.RawQuery = b.String()
	}
	c.Fragment, c.RawFragment = "", ""
	s := c.String()
	// url.String escapes the stars of the user info; show them plainly.
	return strings.ReplaceAll(s, "%2A%2A%2A", redacted)
}

// RedactError returns err's text with any URL it names (as net/http's
// *url.Error does: `Post "http://user:pw@host/?token=T": …`) redacted.
func RedactError(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue2 := *ue
			ue2.URL = redactParsed(u)
			return strings.Replace(err.Error(), ue.Error(), ue2.Error(), 1)
		}
		return strings.Replace(err.Error(), ue.URL, redacted, 1)
	}
	return err.Error()
}

// urlInText matches an http or https URL inside free text: up to the first
// space, quote or angle bracket, which is where net/http's messages and logs
// end one.
var urlInText = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>]+`)

// RedactText returns s with every http or https URL in it redacted as
// RedactURL does: for text that was stored before its URLs were redacted
// (an attempt's error, say), so that showing it does not show them.
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, RedactURL)
}
