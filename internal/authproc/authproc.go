// Package authproc runs authapi binaries for tests and benchmarks that need
// real processes (the fault suite, the multi-instance tests, floodbench): it
// builds the binary, starts it, finds the address it listens on and stops
// it at the test's end (or when the caller says, outside tests).
package authproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"authapi/internal/deathsig"
	"authapi/internal/syncbuf"
)

// Build builds cmd/authapi into dir and returns the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "authapi")
	if out, err := exec.Command("go", "build", "-o", bin, "authapi/cmd/authapi").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build authapi: %v\n%s", err, out)
	}
	return bin, nil
}

// Process is one authapi process.
type Process struct {
	URL string          // http://127.0.0.1:port once listening
	Log *syncbuf.Buffer // its standard error: the log

	tb     testing.TB // nil outside tests (Start)
	cmd    *exec.Cmd
	listen chan string
	exited chan struct{}
	state  *os.ProcessState // once exited
}

// listeningPrefix starts the line cmd/authapi prints on standard output
// once it accepts connections.
const listeningPrefix = "authapi: listening on "

// Launch starts bin with env (and PATH only from this process) and returns
// at once. A process still running when the test ends is killed; its log
// is printed if the test failed.
func Launch(tb testing.TB, bin string, env map[string]string, args ...string) *Process {
	tb.Helper()
	p, err := start(bin, env, args...)
	if err != nil {
		tb.Fatal(err)
	}
	p.tb = tb
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("authapi (pid %d) log:\n%s", p.Pid(), p.Log)
		}
	})
	return p
}

// Start starts bin with env (and PATH only from this process) and waits at
// most timeout until it listens, for callers that are not tests (the
// benchmarks). The caller stops the process (Stop or Kill); should the
// caller die first, the process is killed.
func Start(bin string, env map[string]string, timeout time.Duration, args ...string) (*Process, error) {
	p, err := start(bin, env, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitListening(timeout); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func start(bin string, env map[string]string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Process{Log: &syncbuf.Buffer{}, cmd: cmd, listen: make(chan string, 1), exited: make(chan struct{})}
	cmd.Stderr = p.Log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Should the test binary die, its servers die with it (on Linux).
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	deathsig.Set(cmd.SysProcAttr, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start authapi: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), listeningPrefix); ok {
				p.listen <- u
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

// MustStart launches bin and waits until it listens.
func MustStart(tb testing.TB, bin string, env map[string]string, args ...string) *Process {
	tb.Helper()
	p := Launch(tb, bin, env, args...)
	if err := p.WaitListening(time.Minute); err != nil {
		tb.Fatal(err)
	}
	return p
}

// WaitListening waits until the process listens, and sets URL.
func (p *Process) WaitListening(timeout time.Duration) error {
	select {
	case u := <-p.listen:
		p.URL = u
		return nil
	case <-p.exited:
		return fmt.Errorf("authapi exited before listening (%v):\n%s", p.state, p.Log)
	case <-time.After(timeout):
		return fmt.Errorf("authapi did not listen within %v:\n%s", timeout, p.Log)
	}
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Signal sends sig to the process; a failure fails the test (a process of
// Launch or MustStart only).
func (p *Process) Signal(sig syscall.Signal) {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.tb.Fatalf("signal authapi: %v", err)
	}
}

// Wait waits at most timeout for the process to exit and returns its state.
func (p *Process) Wait(timeout time.Duration) (*os.ProcessState, error) {
	select {
	case <-p.exited:
		return p.state, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("authapi did not exit within %v", timeout)
	}
}

// Stop sends SIGTERM and waits for a graceful exit, killing the process
// after timeout.
func (p *Process) Stop(timeout time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Kill kills the process, if it is still running, and waits for it.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// LogLines returns the JSON log lines whose msg is msg.
func (p *Process) LogLines(msg string) []map[string]any {
	var lines []map[string]any
	for line := range strings.Lines(p.Log.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

// Metric returns one sample of the process's /metrics: the sample of name
// with exactly labels (as the exposition writes them, e.g. result="hit";
// "" for none), or -1 if there is none.
func (p *Process) Metric(name, labels string) (float64, error) {
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if labels != "" {
		name += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(page)
	if m == nil {
		return -1, nil
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// ClientLimitsOff turns off every per-client limit an instance keeps in
// memory, as outside checks do to send a whole suite from one address:
// for the suites and benchmarks whose load comes from one client. The
// login and registration throttles in the database are each caller's
// choice.
var ClientLimitsOff = map[string]string{
	"AUTH_RATE_LIMIT_PER_ADDRESS":      "0",
	"AUTH_CONCURRENCY_PER_ADDRESS":     "0",
	"AUTH_LOGIN_MAX_PER_ADDRESS":       "0",
	"AUTH_AUTH_FAILURES_PER_ADDRESS":   "0",
	"AUTH_KEY_WRITES_PER_USER":         "0",
	"AUTH_PASSWORD_CHECKS_PER_ADDRESS": "0",
}

// NewRequest is a request to a running instance: body, when not empty,
// sent as JSON, and header given as name, value pairs (each set, so a
// later pair replaces an earlier one of the same name).
func NewRequest(ctx context.Context, method, url, body string, header ...string) (*http.Request, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req, nil
}
