package netguard

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"http://user:pw@host/hook?token=T", "http://***:***@host/hook?token=***"},
		{"http://user@host/hook", "http://***@host/hook"},
		{"https://host/a?x=1&y&z=3#frag", "https://host/a?x=***&y&z=***"},
		{"https://host/plain", "https://host/plain"},
		{"http://[::1", "***"},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("send: %w", &url.Error{Op: "Post", URL: "http://user:pw@host/hook?token=SECRET", Err: errors.New("connection refused")})
	got := RedactError(err)
	if strings.Contains(got, "SECRET") || strings.Contains(got, "pw") || strings.Contains(got, "user") {
		t.Fatalf("RedactError left a credential: %s", got)
	}
	if !strings.Contains(got, "connection refused") || !strings.HasPrefix(got, "send: Post ") {
		t.Fatalf("RedactError lost the message: %s", got)
	}
	if RedactError(nil) != "" || RedactError(errors.New("plain")) != "plain" {
		t.Fatal("RedactError changed an error without a URL")
	}
}

func TestRedactText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{`Post "http://user:***@host/hook?token=T": dial tcp: connection refused`, `Post "http://***:***@host/hook?token=***": dial tcp: connection refused`},
		{"GET https://host/a?x=1 and HTTP://u@h/?k=v", "GET https://host/a?x=*** and http://***@h/?k=***"},
		{"no url here", "no url here"},
		{"", ""},
	} {
		if got := RedactText(c.in); got != c.want {
			t.Errorf("RedactText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
