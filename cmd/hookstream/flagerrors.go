package main

import (
	"flag"
	"regexp"
	"sort"
	"strings"
	"time"
)

// The flag package's error texts, which flagError rewrites into lines that
// name --flag, say what was expected, and show an example.
var (
	undefinedFlagRE = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	invalidValueRE  = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -+([^:]+): (.*)$`)
	needsValueRE    = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// flagExamples are example values of the flags whose type says too little.
var flagExamples = map[string]string{
	"server": "http://127.0.0.1:8080", "api": "http://127.0.0.1:8080", "token": "$TOKEN", "api-token": "$TOKEN",
	"url": "https://example.com/hook", "types": "'order.*,invoice.paid'", "secret": "whsec_…",
	"rate-limit": "2.5", "concurrency": "10", "limit": "50", "cursor": "<next_cursor>",
	"poll": "2s", "since": "2h", "until": "30m", "interval": "1m", "expected-window": "15m",
	"endpoint": "ep_…", "reason": "expired", "state": "dead", "type": "order.created",
	"data": `'{"order_id":"o-1"}'`, "time": "2025-05-01T12:00:00Z", "id": "po-1001", "source": "erp",
	"changes-url": "https://erp.example/changes", "header": "'Authorization: Bearer x'",
	"inbound": "github", "signature-header": "X-Signature", "id-header": "X-Delivery", "id-from": "/post/id",
	"listen": "127.0.0.1:9000", "status": "503", "delay": "2s", "retry-after": "5s", "fail-first": "3", "fail-rate": "0.3",
	"http": "127.0.0.1:8080", "data-dir": "./data", "replicas": "3", "log-level": "debug",
}

// flagError turns an error of fs.Parse into one usage line: what is wrong,
// with which --flag, and an example of a right one.
func flagError(fs *flag.FlagSet, err error) error {
	cmd := "hookstream " + fs.Name()
	msg := err.Error()
	if m := undefinedFlagRE.FindStringSubmatch(msg); m != nil {
		hint := ""
		if s := closestFlag(fs, m[1]); s != "" {
			hint = "; did you mean --" + s + "?"
		}
		return usageErrorf("%s: unknown flag --%s%s (see '%s -h')", fs.Name(), m[1], hint, cmd)
	}
	if m := needsValueRE.FindStringSubmatch(msg); m != nil {
		name := m[1]
		return usageErrorf("%s: --%s needs a value, for example: %s --%s %s", fs.Name(), name, cmd, name, flagExample(fs.Lookup(name)))
	}
	if m := invalidValueRE.FindStringSubmatch(msg); m != nil {
		value, name, why := m[1], m[2], m[3]
		f := fs.Lookup(name)
		if why == "parse error" || strings.HasPrefix(why, "strconv.") || strings.HasPrefix(why, "time: ") {
			why = "must be " + flagKind(f)
		}
		return usageErrorf("%s: --%s: %q is not valid: %s; for example: %s --%s %s", fs.Name(), name, value, why, cmd, name, flagExample(f))
	}
	return usageErrorf("%s: %v (see '%s -h')", fs.Name(), err, cmd)
}

// flagType is the type name of f's value: "duration", "int", "float",
// "string", "bool" or "value".
func flagType(f *flag.Flag) string {
	if f == nil {
		return ""
	}
	v := f.Value
	for {
		switch w := v.(type) {
		case *twinValue:
			v = w.Value
			continue
		case *aliasValue:
			v = w.Value
			continue
		}
		break
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "bool"
	}
	switch v.(type) {
	case *durationText:
		return "duration"
	}
	shown := flag.Flag{Name: f.Name, Usage: "", Value: v}
	typ, _ := flag.UnquoteUsage(&shown)
	return typ
}

func flagKind(f *flag.Flag) string {
	switch flagType(f) {
	case "duration":
		return "a duration such as 500ms, 30s or 2h"
	case "int", "uint":
		return "a whole number"
	case "float":
		return "a number"
	case "bool":
		return "true or false"
	}
	return "a valid value"
}

func flagExample(f *flag.Flag) string {
	if f == nil {
		return "VALUE"
	}
	if e, ok := flagExamples[f.Name]; ok {
		return e
	}
	switch flagType(f) {
	case "duration":
		return (30 * time.Second).String()
	case "int", "uint":
		return "10"
	case "float":
		return "2.5"
	}
	return "VALUE"
}

// closestFlag is the flag of fs nearest to name (a typo or another
// spelling), "" when none is near.
func closestFlag(fs *flag.FlagSet, name string) string {
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := f.Value.(*aliasValue); alias {
			return
		}
		d := editDistance(strings.ToLower(name), f.Name)
		if strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name) {
			d = min(d, 1)
		}
		if d <= 2 && d < len(f.Name) {
			cands = append(cands, cand{f.Name, d})
		}
	})
	if len(cands) == 0 {
		return ""
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].d < cands[j].d })
	return cands[0].name
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
