package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"authapi/internal/bench"
)

// logCount is what the server logged about one flood.
type logCount struct {
	flooder    int // lines about the flooder's requests: one per request logged, plus summaries
	summaries  int // of those, requests_not_logged lines
	summarized int // requests the summaries counted
	window     int // every line written while the flood ran
	victim     int // of those, about the victim's requests
}

// maxFloodLines is what "at most a few thousand log lines" is judged
// against.
const maxFloodLines = 3000

// countLogs counts, in the log of the stopped server, the lines about the
// flood from addr (it sends nothing else, so every line naming it is about
// the flood, summaries written after its end included) and the lines
// written while it ran; and it reads the server's own time for each of the
// victim's requests (the access log's duration: from the first middleware
// to the response written) into the phases. Lines naming neither the
// flooder nor the victim mean that the server did not see the clients' own
// addresses, which would void the measurement.
func (s *server) countLogs(r *scenarioResult, addr string) error {
	if r == nil {
		return nil
	}
	var c logCount
	r.idle.server, r.flood.server = map[string][]time.Duration{}, map[string][]time.Duration{}
	within := func(t, start, end time.Time) bool { return !t.Before(start) && !t.After(end) }
	for line := range strings.Lines(s.Log.String()) {
		var l struct {
			Time          time.Time
			Msg           string
			Client        string
			Count         int
			Method, Route string
			Duration      time.Duration // slog writes nanoseconds
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		in := within(l.Time, r.flooder.Start, r.flooder.End)
		if in {
			c.window++
		}
		switch l.Client {
		case addr:
			c.flooder++
			if l.Msg == "requests not logged" {
				c.summaries++
				c.summarized += l.Count
			}
		case victimAddr:
			if in {
				c.victim++
			}
			op := l.Method + " " + l.Route
			switch {
			case within(l.Time, r.idle.start, r.idle.end):
				r.idle.server[op] = append(r.idle.server[op], l.Duration)
			case within(l.Time, r.flood.start, r.flood.end):
				r.flood.server[op] = append(r.flood.server[op], l.Duration)
			}
		}
	}
	if c.flooder == 0 || c.victim == 0 {
		return fmt.Errorf("the server's log names the flooder (%s) %d times and the victim (%s) %d times during the flood: it does not see their own addresses",
			addr, c.flooder, victimAddr, c.victim)
	}
	r.log = c
	return nil
}

// format writes the report in Markdown.
func format(o options, runs []runResult) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Reproduce: `make bench-flood FLOOD_FLAGS='%s'`.\n\n", o.flags)
	var loads []string
	for _, r := range runs {
		loads = append(loads, r.load)
	}
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s, %s): %d runs, each on a fresh server (embedded PostgreSQL, every setting at its default, the per-client limits included). "+
		"In each run and scenario the victim (%s) measures for %v alone (idle), then for %v while one address floods at %d connections. "+
		"The flood is a process of its own (Go's HTTP client, a goroutine per connection, kept alive, each sending its next request as soon as an answer comes) "+
		"on the same CPUs as the server, PostgreSQL and the victim. "+
		"p50 is the median of the runs' medians, the ratio the median of the runs' ratios (flood p50 / idle p50 of the same run); p90 and p99 are over every run's samples. "+
		"Load average (1, 5, 15 min) before → after each run: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(),
		o.runs, victimAddr, o.duration, o.duration, o.conns, strings.Join(loads, "; "))
	if o.has("logins") {
		formatLogins(&b, o, runs)
	}
	if o.has("keys") {
		formatKeys(&b, o, runs)
	}
	return b.String()
}

// target is what the victim's median must stay within under a flood.
type target struct {
	ratio float64
	abs   time.Duration // or at most this (0: none)
}

func (t target) String() string {
	if t.abs == 0 {
		return fmt.Sprintf("≤ %g × idle", t.ratio)
	}
	return fmt.Sprintf("≤ %g × idle or ≤ %v", t.ratio, t.abs)
}

func (t target) met(ratio float64, p50 time.Duration) bool {
	return ratio <= t.ratio || t.abs > 0 && p50 <= t.abs
}

var targets = map[string]target{
	opCreateKey: {ratio: 5, abs: 50 * time.Millisecond},
	opLogin:     {ratio: 5, abs: 250 * time.Millisecond},
	opMe:        {ratio: 5},
}

// victimRows writes a row per operation: the victim's times idle and under
// the flood, against the target of those judged.
func victimRows(b *bytes.Buffer, ops []string, judged map[string]bool, pick func(runResult) *scenarioResult, runs []runResult) {
	b.WriteString("| victim's request | samples idle, flood | idle p50 | flood p50 | ratio | idle p99 | flood p90 | flood p99 | refused under the flood | target | met? | the server's own time (its log), p50 idle → flood |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, op := range ops {
		var idleP50, floodP50 []time.Duration
		var ratios []float64
		var idleAll, floodAll, idleServer, floodServer []time.Duration
		refused := 0
		for _, r := range runs {
			s := pick(r)
			idle, flood := s.idle.durations(op, time.Time{}), s.flood.durations(op, time.Time{})
			idleAll, floodAll = append(idleAll, idle...), append(floodAll, flood...)
			idleP50, floodP50 = append(idleP50, bench.Median(idle)), append(floodP50, bench.Median(flood))
			ratios = append(ratios, ratio(bench.Median(flood), bench.Median(idle)))
			refused += s.flood.failed(op)
			idleServer, floodServer = append(idleServer, bench.Median(s.idle.server[op])), append(floodServer, bench.Median(s.flood.server[op]))
		}
		t, met := targets[op], "—"
		tgt := "none (scenario A's: " + t.String() + ")"
		if judged[op] {
			tgt, met = t.String(), yes(t.met(bench.Median(ratios), bench.Median(floodP50)) && refused == 0)
		}
		fmt.Fprintf(b, "| `%s` | %d, %d | %s | %s | %.2f | %s | %s | %s | %d | %s | %s | %s → %s |\n", op, len(idleAll), len(floodAll),
			bench.Round(bench.Median(idleP50)), bench.Round(bench.Median(floodP50)), bench.Median(ratios),
			bench.Round(bench.Percentile(idleAll, 99)), bench.Round(bench.Percentile(floodAll, 90)), bench.Round(bench.Percentile(floodAll, 99)),
			refused, tgt, met, bench.Round(bench.Median(idleServer)), bench.Round(bench.Median(floodServer)))
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

func yes(ok bool) string { return map[bool]string{true: "yes", false: "**no**"}[ok] }

// floodFigures writes what the floods of every run sent and got, and what
// they cost, as medians over the runs.
func floodFigures(b *bytes.Buffer, o options, pick func(runResult) *scenarioResult, runs []runResult) {
	var rates, waits, waitsIdle, waitSec, inUse, inUseIdle, queue, srv, db, fl, perReq []float64
	kinds := map[string][]float64{}
	for _, r := range runs {
		s := pick(r)
		secs := s.flood.end.Sub(s.flood.start).Seconds()
		rates = append(rates, s.flooder.rate())
		waits, waitsIdle = append(waits, s.flood.poolWaits), append(waitsIdle, s.idle.poolWaits)
		waitSec = append(waitSec, s.flood.poolWaitSec)
		inUse, inUseIdle = append(inUse, s.flood.maxInUse), append(inUseIdle, s.idle.maxInUse)
		queue = append(queue, s.flood.maxHashQueue)
		srv = append(srv, 100*s.flood.cpuServer.Seconds()/secs)
		db = append(db, 100*s.flood.cpuDB.Seconds()/secs)
		fl = append(fl, 100*s.flood.cpuFlooder.Seconds()/s.flooder.End.Sub(s.flooder.Start).Seconds())
		perReq = append(perReq, 1e6*(s.flood.cpuServer-s.idle.cpuServer).Seconds()/float64(max(s.flooder.Requests, 1)))
		for _, k := range s.flooder.answerKinds() {
			kinds[k] = nil
		}
	}
	for _, r := range runs {
		s := pick(r)
		for k := range kinds {
			kinds[k] = append(kinds[k], s.flooder.share(k))
		}
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, c string) int {
		if d := bench.Median(kinds[c]) - bench.Median(kinds[a]); d != 0 {
			return map[bool]int{true: 1, false: -1}[d > 0]
		}
		return strings.Compare(a, c)
	})
	var mix []string
	for _, k := range names {
		mix = append(mix, fmt.Sprintf("%s %.2f%%", k, bench.Median(kinds[k])))
	}
	fmt.Fprintf(b, "The flood: %s requests/s answered; answers %s. "+
		"Database pool: at most %.0f of 20 connections in use (idle: %.0f), %.0f waits for a connection (idle: %.0f) totalling %.1f s; password hash queue at most %.0f. "+
		"CPU while it ran, in %% of one CPU (the machine has %d): server %.0f, PostgreSQL %.0f, the flood process %.0f; the server's CPU beyond its idle phase's, per flood request: %.0f µs.\n\n",
		bench.Commas(bench.Median(rates)), strings.Join(mix, ", "),
		bench.Median(inUse), bench.Median(inUseIdle), bench.Median(waits), bench.Median(waitsIdle), bench.Median(waitSec), bench.Median(queue),
		runtime.NumCPU(), bench.Median(srv), bench.Median(db), bench.Median(fl), bench.Median(perReq))
}

func formatLogins(b *bytes.Buffer, o options, runs []runResult) {
	pick := func(r runResult) *scenarioResult { return r.logins }
	fmt.Fprintf(b, "**Bad logins** from %s at %d connections (a wrong password for the victim's account or an unknown username, in turn); the victim logs in and creates a key with a JWT, one after the other, every %v:\n\n",
		loginFloodAddr, o.conns, o.loginEvery)
	victimRows(b, []string{opCreateKey, opLogin}, map[string]bool{opCreateKey: true, opLogin: true}, pick, runs)
	b.WriteString("\n")

	timeline(b, o, []string{opCreateKey, opLogin}, pick, runs)
	floodFigures(b, o, pick, runs)

	b.WriteString("| run | key creation p50 idle → flood | login p50 idle → flood | flood req/s | flood answers | logins that failed (hashed), throttled | last 401 after | pool in use (max), waits | hash queue (max) | log lines about the flood |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range runs {
		s := r.logins
		last := "—"
		if !s.flooder.LastPast.IsZero() {
			last = fmt.Sprintf("%.1f s", s.flooder.LastPast.Sub(s.flooder.Start).Seconds())
		}
		fmt.Fprintf(b, "| %d | %s → %s | %s → %s | %s | %s | %.0f, %.0f | %s | %.0f, %.0f | %.0f | %d |\n", i+1,
			bench.Round(bench.Median(s.idle.durations(opCreateKey, time.Time{}))), bench.Round(bench.Median(s.flood.durations(opCreateKey, time.Time{}))),
			bench.Round(bench.Median(s.idle.durations(opLogin, time.Time{}))), bench.Round(bench.Median(s.flood.durations(opLogin, time.Time{}))),
			bench.Commas(s.flooder.rate()), s.flooder.mix(), s.flood.logins["failed"], s.flood.logins["throttled"], last,
			s.flood.maxInUse, s.flood.poolWaits, s.flood.maxHashQueue, s.log.flooder)
	}
	b.WriteString("\n")
}

func formatKeys(b *bytes.Buffer, o options, runs []runResult) {
	pick := func(r runResult) *scenarioResult { return r.keys }
	fmt.Fprintf(b, "**Unknown API keys** from %s at %d connections (a new well-formed key each time: its checksum holds, so each would need a lookup); the victim calls `GET /v1/me` with its key (cached) every %v and, at the same time, creates a key (which needs the database) every %v:\n\n",
		keyFloodAddr, o.conns, o.meEvery, o.loginEvery)
	victimRows(b, []string{opMe, opCreateKey}, map[string]bool{opMe: true}, pick, runs)
	b.WriteString("\n")
	timeline(b, o, []string{opMe, opCreateKey}, pick, runs)

	var share, lines, window, victim, lookups []float64
	for _, r := range runs {
		share = append(share, r.keys.flooder.share("429"))
		lines = append(lines, float64(r.keys.log.flooder))
		window = append(window, float64(r.keys.log.window))
		victim = append(victim, float64(r.keys.log.victim))
		lookups = append(lookups, r.keys.flood.keysRefused)
	}
	b.WriteString("| the flood | median of runs (each run) | target | met? |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| answered `429` | %.2f%% (%s) | ≥ 80%% | %s |\n", bench.Median(share), joined(share, "%.2f%%"), yes(slices.Min(share) >= 80))
	fmt.Fprintf(b, "| log lines about its requests (a line per request logged, and the summaries) | %.0f (%s) | at most a few thousand (judged: ≤ %s) | %s |\n",
		bench.Median(lines), joined(lines, "%.0f"), bench.Commas(maxFloodLines), yes(slices.Max(lines) <= maxFloodLines))
	fmt.Fprintf(b, "| every log line written while it ran (of which the victim's: a line per request) | %.0f (%s) | — | — |\n",
		bench.Median(window), joined(window, "%.0f")+"; victim's "+joined(victim, "%.0f"))
	// AUTH_AUTH_FAILURES_PER_ADDRESS: 100 a minute, in bursts of 100.
	budget := 100 + 100*o.duration.Minutes()
	fmt.Fprintf(b, "| its unknown keys looked up in the database (refused API keys, from /metrics) | %.0f (%s) | — (the failure budget: %.0f in %v) | — |\n\n",
		bench.Median(lookups), joined(lookups, "%.0f"), budget, o.duration)
	floodFigures(b, o, pick, runs)

	b.WriteString("| run | `GET /v1/me` p50 idle → flood | key creation p50 idle → flood | flood req/s | flood answers | lookups | pool in use (max), waits | log lines about the flood: all, of which summaries (requests they count) |\n|---|---|---|---|---|---|---|---|\n")
	for i, r := range runs {
		s := r.keys
		fmt.Fprintf(b, "| %d | %s → %s | %s → %s | %s | %s | %.0f | %.0f, %.0f | %d, %d (%s) |\n", i+1,
			bench.Round(bench.Median(s.idle.durations(opMe, time.Time{}))), bench.Round(bench.Median(s.flood.durations(opMe, time.Time{}))),
			bench.Round(bench.Median(s.idle.durations(opCreateKey, time.Time{}))), bench.Round(bench.Median(s.flood.durations(opCreateKey, time.Time{}))),
			bench.Commas(s.flooder.rate()), s.flooder.mix(), s.flood.keysRefused, s.flood.maxInUse, s.flood.poolWaits,
			s.log.flooder, s.log.summaries, bench.Commas(float64(s.log.summarized)))
	}
	b.WriteString("\n")
}

// timeline writes the flood in parts of 5 s: what it got, and the
// victim's medians for its requests that started then, over every run. A
// flood changes as it spends its budgets: a login flood waits its turn at
// the password check (at most 10 s), then meets the per-address login
// limit.
func timeline(b *bytes.Buffer, o options, ops []string, pick func(runResult) *scenarioResult, runs []runResult) {
	const partSec = 5
	parts := max(int(o.duration.Seconds())/partSec, 1)
	part := func(sec int) int { return min(sec/partSec, parts-1) }
	answers := make([]map[string]int, parts)
	seconds := make([]float64, parts) // flood seconds in each part, over the runs
	victim := make([]map[string][]time.Duration, parts)
	totals := map[string]int{}
	for i := range parts {
		answers[i], victim[i] = map[string]int{}, map[string][]time.Duration{}
	}
	for _, r := range runs {
		s := pick(r)
		length := s.flooder.End.Sub(s.flooder.Start).Seconds()
		for sec, m := range s.flooder.Timeline {
			seconds[part(sec)] += min(length-float64(sec), 1) // the last second is cut
			for k, v := range m {
				answers[part(sec)][k] += v
				totals[k] += v
			}
		}
		for _, op := range ops {
			for _, x := range s.flood.samples[op] {
				i := part(int(x.start.Sub(s.flooder.Start) / time.Second))
				victim[i][op] = append(victim[i][op], x.took)
			}
		}
	}
	// Each part's medians are judged against the idle phases' (the
	// median of the runs' medians).
	idle := map[string]time.Duration{}
	for _, op := range ops {
		var p50 []time.Duration
		for _, r := range runs {
			p50 = append(p50, bench.Median(pick(r).idle.durations(op, time.Time{})))
		}
		idle[op] = bench.Median(p50)
	}
	kinds := make([]string, 0, len(totals))
	for k := range totals {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, c string) int { return totals[c] - totals[a] })
	b.WriteString("| part of the flood | flood answers/s: all")
	for _, k := range kinds {
		b.WriteString(", " + k)
	}
	for _, op := range ops {
		b.WriteString(" | victim's `" + op + "` p50 (× idle; samples)")
	}
	b.WriteString(" |\n|---|---" + strings.Repeat("|---", len(ops)) + "|\n")
	for i := range parts {
		end := fmt.Sprintf("%d", (i+1)*partSec)
		if i == parts-1 {
			end = "end"
		}
		per := func(n int) string { return bench.Commas(float64(n) / max(seconds[i], 0.001)) }
		all := 0
		var each []string
		for _, k := range kinds {
			all += answers[i][k]
			each = append(each, per(answers[i][k]))
		}
		fmt.Fprintf(b, "| %d–%s s | %s: %s", i*partSec, end, per(all), strings.Join(each, ", "))
		for _, op := range ops {
			p50 := bench.Median(victim[i][op])
			fmt.Fprintf(b, " | %s (%.1f ×; %d)", bench.Round(p50), ratio(p50, idle[op]), len(victim[i][op]))
		}
		b.WriteString(" |\n")
	}
	b.WriteString("\n")
}

func joined(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, ", ")
}
