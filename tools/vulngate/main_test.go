package main

import (
	"io"
	"strings"
	"testing"
)

// report is a govulncheck JSON stream: a called finding (GO-1), one only
// imported (GO-2, no function), one only required (GO-3), and GO-1 again.
const report = `{"config":{"protocol_version":"v1.0.0"}}
{"osv":{"id":"GO-1"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","version":"v1.0.0","package":"example.com/m/p","function":"F","receiver":"*T"},{"module":"authapi","package":"authapi/server","function":"New"}]}}
{"finding":{"osv":"GO-2","trace":[{"module":"example.com/n","version":"v1.0.0","package":"example.com/n/q"}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"stdlib","version":"v1.26.8"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","package":"example.com/m/p","function":"G"}]}}
`

func TestCalledFindings(t *testing.T) {
	found, err := calledFindings(strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	want := finding{ID: "GO-1", Fixed: "v1.2.3", Module: "example.com/m", Symbol: "example.com/m/p.T.F"}
	if len(found) != 1 || found["GO-1"] != want {
		t.Fatalf("calledFindings = %+v, want only %+v", found, want)
	}
	if _, err := calledFindings(strings.NewReader(`{"finding":`)); err == nil {
		t.Fatal("calledFindings(truncated JSON) = nil error")
	}
}

func TestVerdict(t *testing.T) {
	called := map[string]finding{"GO-1": {ID: "GO-1", Module: "example.com/m"}}
	for _, tc := range []struct {
		name     string
		found    map[string]finding
		accepted map[string]string
		wantErr  string
	}{
		{"nothing", nil, nil, ""},
		{"accepted", called, map[string]string{"GO-1": "does not apply"}, ""},
		{"called, not accepted", called, nil, "not accepted: fix them"},
		{"accepted, no longer found", nil, map[string]string{"GO-1": "does not apply"}, "no longer found: GO-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verdict(tc.found, tc.accepted, io.Discard)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("verdict = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseAccept(t *testing.T) {
	got, err := parseAccept(strings.NewReader("# comment\n\nGO-2026-0001  it does not apply  # trailing\nGO-2026-0002 reason\n"))
	if err != nil || len(got) != 2 || got["GO-2026-0001"] != "it does not apply" || got["GO-2026-0002"] != "reason" {
		t.Fatalf("parseAccept = %v, %v", got, err)
	}
	for _, bad := range []string{"GO-2026-0003\n", "CVE-2026-1 reason\n"} {
		if _, err := parseAccept(strings.NewReader(bad)); err == nil {
			t.Errorf("parseAccept(%q) = nil error, want a line without a reason or ID refused", bad)
		}
	}
}
