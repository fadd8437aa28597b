package main

import "context"

func eventsCommands() []*command {
	return []*command{
		// Event ids may hold ':' (a source's changes are "<source>:<change id>")
		// and anything else a publisher chose: the client path-escapes them.
		{name: "show", summary: "show an event and its delivery status per endpoint", run: (*cli).eventsShow},
	}
}

// events show ID
func (c *cli) eventsShow(ctx context.Context, args []string) error {
	id, cf, cl, ctx, ans, err := c.idCommand(ctx, "events show", args)
	if err != nil {
		return err
	}
	ev, err := cl.Event(ctx, id)
	if err != nil {
		return apiErr(cl, err)
	}
	if cf.json {
		return printJSON(c.stdout, ans.last())
	}
	var f fields
	f.add("id", ev.ID)
	f.add("type", ev.Type)
	f.add("source", ev.Source)
	f.addIf("ordering key", ev.OrderingKey)
	f.add("time", when(ev.Time))
	f.add("data", short(string(ev.Data), 200))
	if err := f.print(c.stdout); err != nil {
		return err
	}
	t := newTable("ENDPOINT", "STATE", "ATTEMPTS", "LAST ATTEMPT", "LAST STATUS", "LAST ERROR", "NEXT ATTEMPT", "DEAD LETTER")
	for _, d := range ev.Deliveries {
		status := ""
		if d.LastStatus != 0 {
			status = num(d.LastStatus)
		}
		t.add(d.Endpoint, d.State, num(d.Attempts), when(d.LastAttempt), status, short(d.LastError, 50), when(d.NextAttempt), d.DeadLetterID)
	}
	_, _ = c.stdout.Write([]byte("\n"))
	return t.print(c.stdout, "deliveries (no endpoint subscribes to it)")
}
