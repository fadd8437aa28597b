package poller

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Change is one entry of a source's change feed.
type Change struct {
	// ID identifies the change within its source; the event id is
	// "<source id>:<ID>". Required.
	ID string
	// Type is the event type (see streams.ValidateType). Required.
	Type string
	// Time is when the change happened; zero means the time of the poll.
	Time time.Time
	// Data is the change's JSON object.
	Data json.RawMessage
	// Err, when set, says why the Source could not read this change (the
	// HTTP adapter sets it for a change it cannot decode; ID is kept when
	// it could be read). Such a change is skipped like any invalid one.
	Err error
}

// Page is one answer of a change feed.
type Page struct {
	Changes []Change
	// NextCursor is the cursor to poll from next; "" keeps the current one.
	NextCursor string
	// HasMore says another page is ready at NextCursor and should be polled
	// at once.
	HasMore bool
}

// Source is a change feed. Poll returns the page after cursor ("" = from the
// start). It must return when ctx is done. Its errors wrap ErrUnreachable
// (connection error, timeout, 5xx), ErrAuth (401/403) or ErrBadFeed (an
// invalid page) so that the source's status can be derived; any other error
// counts as ErrUnreachable.
//
// The poller validates every change it gets, whichever the Source. A change
// that is not valid (or carries Err) is skipped: the page's valid changes are
// published, the cursor moves past the page, and the skipped change is
// recorded on the source (its index, id, cursor and reason; a count; the
// last error) and logged, so that one bad change never stalls a feed and is
// never skipped unseen. A page that cannot be followed (its cursor does not
// advance while HasMore is set) is refused whole, like an ErrBadFeed.
type Source interface {
	Poll(ctx context.Context, cursor string) (Page, error)
}

// Errors a Source wraps so that the poller can tell what went wrong.
var (
	// ErrUnreachable: the feed could not be reached (connection error,
	// timeout, 5xx). UnreachableAfter of them in a row make the source
	// unreachable.
	ErrUnreachable = errors.New("source unreachable")
	// ErrAuth: the feed refused the credentials (401/403). The source is
	// auth_required at once.
	ErrAuth = errors.New("source refused the credentials")
	// ErrBadFeed: the feed answered something that is not a valid page (not
	// JSON, not the page's shape, a cursor that does not advance). The poll
	// fails; the error is shown on the source, and UnreachableAfter failed
	// polls in a row make it unreachable, like any failing poll: the feed is
	// stalled until it answers a valid page. (One invalid change in a valid
	// page is not an ErrBadFeed: it is skipped.)
	ErrBadFeed = errors.New("bad feed")
)
