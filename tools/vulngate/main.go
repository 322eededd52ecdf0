// Command vulngate fails the build on vulnerabilities that govulncheck
// finds the code calling, unless a reviewed list accepts them.
//
// govulncheck has no way to accept a finding: its exit status counts every
// called vulnerability, including those that have no fix yet (a module
// advisory with no symbols marks every call into the module) and those of
// the standard library, which only a newer toolchain fixes. vulngate reads
// govulncheck's JSON output and an accept list of lines
//
//	GO-YYYY-NNNN  why it does not apply, or what will fix it
//
// ('#' starts a comment) and fails on any called finding that is not listed,
// and on any listed ID that is no longer found, so that the list cannot
// outlive its reasons.
//
// Usage: vulngate -accept FILE GOVULNCHECK.json
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

func main() {
	accept := flag.String("accept", "", "file of accepted vulnerability IDs, each with its reason")
	flag.Parse()
	if *accept == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: vulngate -accept FILE GOVULNCHECK.json")
		os.Exit(2)
	}
	if err := run(*accept, flag.Arg(0), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(1)
	}
}

func run(acceptPath, reportPath string, out io.Writer) error {
	af, err := os.Open(acceptPath)
	if err != nil {
		return err
	}
	defer af.Close()
	accepted, err := parseAccept(af)
	if err != nil {
		return fmt.Errorf("%s: %w", acceptPath, err)
	}
	rf, err := os.Open(reportPath)
	if err != nil {
		return err
	}
	defer rf.Close()
	found, err := calledFindings(rf)
	if err != nil {
		return fmt.Errorf("%s: %w", reportPath, err)
	}
	return verdict(found, accepted, out)
}

// finding is one called vulnerability: its ID and where the code reaches it.
type finding struct {
	ID, Fixed, Module, Symbol string
}

// calledFindings reads govulncheck's JSON stream and returns, by ID, the
// findings whose trace reaches a vulnerable function (govulncheck also
// reports modules and packages that are only imported).
func calledFindings(r io.Reader) (map[string]finding, error) {
	type frame struct {
		Module   string `json:"module"`
		Package  string `json:"package"`
		Function string `json:"function"`
		Receiver string `json:"receiver"`
	}
	type message struct {
		Finding *struct {
			OSV          string  `json:"osv"`
			FixedVersion string  `json:"fixed_version"`
			Trace        []frame `json:"trace"`
		} `json:"finding"`
	}
	found := make(map[string]finding)
	dec := json.NewDecoder(r)
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return found, nil
		}
		if err != nil {
			return nil, err
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue
		}
		if _, dup := found[f.OSV]; dup {
			continue
		}
		sym := f.Trace[0].Function
		if f.Trace[0].Receiver != "" {
			sym = strings.TrimPrefix(f.Trace[0].Receiver, "*") + "." + sym
		}
		found[f.OSV] = finding{ID: f.OSV, Fixed: f.FixedVersion, Module: f.Trace[0].Module, Symbol: f.Trace[0].Package + "." + sym}
	}
}

// parseAccept reads the accept list: ID and reason per line.
func parseAccept(r io.Reader) (map[string]string, error) {
	accepted := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		id, reason, _ := strings.Cut(strings.TrimSpace(line), " ")
		if id == "" {
			continue
		}
		if !strings.HasPrefix(id, "GO-") || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("line %d: want an ID (GO-YYYY-NNNN) and the reason for accepting it", n)
		}
		accepted[id] = strings.TrimSpace(reason)
	}
	return accepted, sc.Err()
}

func verdict(found map[string]finding, accepted map[string]string, out io.Writer) error {
	var unaccepted, stale []string
	for _, id := range slices.Sorted(maps.Keys(found)) {
		f := found[id]
		fixed := f.Fixed
		if fixed == "" {
			fixed = "no fix yet"
		}
		if reason, ok := accepted[id]; ok {
			fmt.Fprintf(out, "accepted  %s  %s (%s): %s\n", id, f.Module, fixed, reason)
			continue
		}
		fmt.Fprintf(out, "CALLED    %s  %s, fixed in %s, reached at %s\n", id, f.Module, fixed, f.Symbol)
		unaccepted = append(unaccepted, id)
	}
	for _, id := range slices.Sorted(maps.Keys(accepted)) {
		if _, ok := found[id]; !ok {
			fmt.Fprintf(out, "stale     %s  accepted but no longer found: remove it from the list\n", id)
			stale = append(stale, id)
		}
	}
	switch {
	case len(unaccepted) > 0:
		return fmt.Errorf("%d called vulnerabilities are not accepted: fix them (go get, a newer Go) or accept them with a reason: %s",
			len(unaccepted), strings.Join(unaccepted, " "))
	case len(stale) > 0:
		return fmt.Errorf("%d accepted vulnerabilities are no longer found: %s", len(stale), strings.Join(stale, " "))
	}
	fmt.Fprintf(out, "vulngate: %d called vulnerabilities, all accepted\n", len(found))
	return nil
}
