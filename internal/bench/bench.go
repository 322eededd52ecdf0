// Package bench holds what the load benchmarks (cmd/authbench,
// cmd/floodbench) share: medians and percentiles, the machine's load and
// the CPU time of a process and its children read from /proc, the
// formatting of their Markdown tables, and the rewriting of their own
// section of BENCHMARKS.md.
package bench

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Median returns the middle of v (the mean of the two middle values for an
// even count), or 0 for none. v is not changed.
func Median[T int | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Percentile returns the p-th percentile of v (0 < p <= 100) by the
// nearest-rank method: the smallest value that at least p% of v are not
// above. It returns 0 for none; v is not changed.
func Percentile(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}

// Loadavg returns the machine's load averages over 1, 5 and 15 minutes,
// as /proc/loadavg writes them, or "?".
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// CPUTimes returns the CPU time used so far by the process pid and by all
// its living descendants (the embedded PostgreSQL of an authapi), from
// /proc. Descendants that exited took their time with them.
func CPUTimes(pid int) (self, descendants time.Duration) {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	parent := map[int]int{}
	used := map[int]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command may hold spaces: fields count from after its ")".
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		used[p] = time.Duration(ut+st) * tick
	}
	for p := range used {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				descendants += used[p]
				break
			}
		}
	}
	return used[pid], descendants
}

// Round writes d with three significant digits or so: 374ms, 21.95ms,
// 457µs.
func Round(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// Commas writes v with one decimal below 1,000 and as a whole number with
// thousands separated by commas above: 82.7, 54,178.
func Commas(v float64) string {
	if v < 1000 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.Itoa(int(v + 0.5))
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ReplaceSection replaces the text between the lines begin and end in the
// file at path with report (appending the markers and report when they are
// missing, creating the file when there is none). Everything else in the
// file is kept as it is.
func ReplaceSection(path, begin, end, report string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text := string(old)
	section := begin + "\n" + report + end
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i >= 0 && j > i {
		text = text[:i] + section + text[j+len(end):]
	} else {
		text += "\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
