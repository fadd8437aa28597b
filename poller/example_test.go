package poller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/hookstream/hookstream/poller"
)

// A change feed in DESIGN.md's format, read page by page as the poller does.
func ExampleHTTPSource() {
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Query().Get("since") {
		case "":
			fmt.Fprint(w, `{"changes":[{"id":"1","type":"order.created","time":"2025-05-01T10:00:00Z","data":{"total":42}}],"next_cursor":"1","has_more":true}`)
		default:
			fmt.Fprint(w, `{"changes":[{"id":"2","type":"order.paid","data":{"total":42}}],"next_cursor":"2","has_more":false}`)
		}
	}))
	defer feed.Close()

	src := poller.NewHTTPSource(feed.URL+"/changes", map[string]string{"Authorization": "Bearer t0ken"}, feed.Client())
	cursor := ""
	for {
		page, err := src.Poll(context.Background(), cursor)
		if err != nil {
			fmt.Println("poll:", err)
			return
		}
		for _, c := range page.Changes {
			fmt.Printf("event id shop:%s type %s data %s\n", c.ID, c.Type, c.Data)
		}
		cursor = page.NextCursor
		if !page.HasMore {
			break
		}
	}
	fmt.Println("cursor", cursor)

	_, err := poller.NewHTTPSource(feed.URL+"/changes", nil, feed.Client()).Poll(context.Background(), "")
	fmt.Println(err)
	// Output:
	// event id shop:1 type order.created data {"total":42}
	// event id shop:2 type order.paid data {"total":42}
	// cursor 2
	// source refused the credentials: status 401
}
