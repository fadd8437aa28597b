package client

import (
	"context"
	"fmt"
	"iter"
)

// All yields every item of a list from opts.Cursor on, fetching page after
// page with list (a method value such as c.ListEndpoints, or a closure
// around c.ListDeadLetters with its filter), and stops at the first error,
// which it yields. A page of no items with a next cursor (the dead-letter
// list reads a bounded stretch of its stream per request) is followed at
// once.
//
//	for ep, err := range client.All(ctx, client.ListOptions{}, c.ListEndpoints) { … }
func All[T any](ctx context.Context, opts ListOptions, list func(context.Context, ListOptions) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			p, err := list(ctx, opts)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == opts.Cursor {
				yield(zero, fmt.Errorf("list: next_cursor %q repeats the cursor asked for", opts.Cursor))
				return
			}
			opts.Cursor = p.NextCursor
		}
	}
}

// Collect gathers every item All yields, or the first error.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	out := []T{}
	for it, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, it)
	}
	return out, nil
}
