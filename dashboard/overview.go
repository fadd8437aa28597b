package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
)

// Sizes of the overview.
const (
	// overviewAttempts is how many of an endpoint's latest attempts its
	// success rate is computed over.
	overviewAttempts = 50
	// endpointsPerPage bounds the endpoints of one overview page.
	endpointsPerPage = 100
	// statsParallel bounds the attempt logs read at once.
	statsParallel = 8
	// dlqCountMax bounds the dead letters counted: beyond it the overview
	// says "1000+" rather than read the whole queue on every view.
	dlqCountMax  = 1000
	dlqCountPage = 250
)

// endpointRow is one endpoint of the overview with its recent attempts.
type endpointRow struct {
	endpointJSON
	Attempts   int
	OK         int
	Last       *attemptJSON
	StatsError string
}

// reasonCount is the dead letters (state dead) of one reason.
type reasonCount struct {
	Reason string
	Count  int
}

type overviewView struct {
	base
	// Window is how many latest attempts the success rates count.
	Window         int
	Endpoints      []endpointRow
	EndpointsError string
	Cursor         string
	NextCursor     string

	DLQ      []reasonCount
	DLQTotal int
	DLQMore  bool
	DLQError string

	Sources      []sourceJSON
	SourcesMore  bool
	SourcesError string
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := &overviewView{Cursor: r.URL.Query().Get("cursor"), Window: overviewAttempts}
	v.Title, v.Nav = "Overview", "overview"
	var wg sync.WaitGroup
	wg.Go(func() { d.endpointRows(ctx, v) })
	wg.Go(func() { v.DLQ, v.DLQTotal, v.DLQMore, v.DLQError = d.countDead(ctx) })
	wg.Go(func() {
		var p page[sourceJSON]
		if err := d.api.get(ctx, "/v1/sources", url.Values{"limit": {"100"}}, &p); err != nil {
			v.SourcesError = userMessage(err)
		}
		v.Sources, v.SourcesMore = p.Items, p.NextCursor != ""
	})
	wg.Wait()
	d.render(w, r, http.StatusOK, "overview", v)
}

// endpointRows reads one page of endpoints and, for each, its latest
// attempts, a few endpoints at a time.
func (d *Dashboard) endpointRows(ctx context.Context, v *overviewView) {
	q := url.Values{"limit": {strconv.Itoa(endpointsPerPage)}}
	if v.Cursor != "" {
		q.Set("cursor", v.Cursor)
	}
	var p page[endpointJSON]
	if err := d.api.get(ctx, "/v1/endpoints", q, &p); err != nil {
		v.EndpointsError = userMessage(err)
		return
	}
	v.NextCursor = p.NextCursor
	v.Endpoints = make([]endpointRow, len(p.Items))
	sem := make(chan struct{}, statsParallel)
	var wg sync.WaitGroup
	for i, ep := range p.Items {
		row := &v.Endpoints[i]
		row.endpointJSON = ep
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var a page[attemptJSON]
			err := d.api.get(ctx, endpointPath(ep.ID)+"/attempts", url.Values{"limit": {strconv.Itoa(overviewAttempts)}}, &a)
			if err != nil {
				row.StatsError = userMessage(err)
				return
			}
			row.Attempts = len(a.Items)
			for _, at := range a.Items {
				if at.OK() {
					row.OK++
				}
			}
			if len(a.Items) > 0 {
				row.Last = &a.Items[0] // newest first
			}
		})
	}
	wg.Wait()
}

// countDead counts the records in state dead by reason, up to dlqCountMax.
func (d *Dashboard) countDead(ctx context.Context) (counts []reasonCount, total int, more bool, msg string) {
	by := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		q := url.Values{"state": {"dead"}, "limit": {strconv.Itoa(dlqCountPage)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p page[struct {
			Reason string `json:"reason"`
		}]
		if err := d.api.get(ctx, "/v1/dlq", q, &p); err != nil {
			return nil, 0, false, userMessage(err)
		}
		for _, it := range p.Items {
			by[it.Reason]++
			total++
		}
		cursor = p.NextCursor
		if cursor == "" {
			break
		}
		if total >= dlqCountMax || pages >= 4*dlqCountMax/dlqCountPage {
			more = true
			break
		}
	}
	// The documented reasons first, in their order, then any other.
	for _, reason := range []string{"expired", "endpoint_gone", "endpoint_deleted"} {
		if n := by[reason]; n > 0 {
			counts = append(counts, reasonCount{reason, n})
			delete(by, reason)
		}
	}
	var rest []string
	for reason := range by {
		rest = append(rest, reason)
	}
	slices.Sort(rest)
	for _, reason := range rest {
		counts = append(counts, reasonCount{reason, by[reason]})
	}
	return counts, total, more, ""
}
