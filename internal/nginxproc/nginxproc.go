// Package nginxproc runs nginx with the shipped gateway configuration
// (deploy/nginx/authapi.conf) for the gateway tests and the bench: the
// shipped file with its addresses set, included in a main configuration of
// nginx's own folder, in the foreground, in a process group of its own.
package nginxproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"authapi/deploy"
)

// Addresses are what a deployment sets in the shipped configuration.
type Addresses struct {
	Listen  string // host:port the gateway listens on
	Authapi string // authapi's host:port
	Product string // the product's host:port
}

// setLine is a line of the shipped configuration that a deployment edits:
// a server or listen directive marked "# SET: <what>".
var setLine = regexp.MustCompile(`(?m)^(\s*(?:server|listen)\s+)\S+;(\s*# SET: (.+))$`)

// Config returns the shipped configuration with its addresses set. Every
// line marked "SET:" must be one of the three, each set once, so that what
// runs is the shipped file, not a copy that could drift from it.
func Config(a Addresses) (string, error) {
	values := map[string]string{
		"authapi's AUTH_ADDR":             a.Authapi,
		"the product's address":           a.Product,
		"where clients reach the gateway": a.Listen,
	}
	set := map[string]int{}
	var err error
	out := setLine.ReplaceAllStringFunc(deploy.NginxConf, func(line string) string {
		m := setLine.FindStringSubmatch(line)
		v, ok := values[m[3]]
		if !ok {
			err = fmt.Errorf("nginxproc: the shipped configuration sets %q, which this package does not know", m[3])
			return line
		}
		set[m[3]]++
		return m[1] + v + ";" + m[2]
	})
	for what := range values {
		if err == nil && set[what] != 1 {
			err = fmt.Errorf("nginxproc: the shipped configuration sets %q %d times, want once", what, set[what])
		}
	}
	return out, err
}

// Find returns the nginx binary: on PATH, or where Debian puts it.
func Find() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed: apt-get install nginx")
}

// Process is a running nginx.
type Process struct {
	Dir    string // its folder: configuration, logs, temporary files
	cmd    *exec.Cmd
	exited chan struct{}
}

// Options are the parts of the main configuration around the gateway's.
type Options struct {
	Workers   int    // worker processes (0: one)
	AccessLog bool   // write Dir/access.log
	HTTP      string // more of the http block, such as other servers
}

// Start writes a main configuration into a new folder that includes
// gateway (a configuration from Config) in its http block, starts nginx in
// the foreground and returns once every address in listen accepts
// connections. nginx is its own process group; when this process dies,
// nginx is told to stop (SIGTERM, which stops its workers too). Stop it,
// then Remove its folder.
func Start(gateway string, listen []string, o Options) (*Process, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	// Run as root, nginx's workers run as nobody: they must reach the
	// folder of their temporary files (request bodies), so it is in the
	// system's temporary folder (a test's own is private) and readable.
	dir, err := os.MkdirTemp("", "authapi-nginx-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "gateway.conf"), []byte(gateway), 0o644); err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	accessLog := "off"
	if o.AccessLog {
		accessLog = filepath.Join(dir, "access.log") + " gateway"
	}
	var main strings.Builder
	fmt.Fprintf(&main, "daemon off;\nmaster_process on;\nworker_processes %d;\npid %s;\n", o.Workers, filepath.Join(dir, "nginx.pid"))
	fmt.Fprintf(&main, "events {\n    worker_connections 4096;\n}\nhttp {\n")
	fmt.Fprintf(&main, "    log_format gateway '$remote_addr \"$request\" $status auth=$authapi_status upstream=$upstream_status $request_id';\n")
	fmt.Fprintf(&main, "    access_log %s;\n", accessLog)
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&main, "    %s_temp_path %s;\n", t, filepath.Join(dir, t))
	}
	fmt.Fprintf(&main, "    include %s;\n%s\n}\n", filepath.Join(dir, "gateway.conf"), o.HTTP)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.SysProcAttr = procAttr()
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	p := &Process{Dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range listen {
		for {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				return nil, fmt.Errorf("nginx exited before listening on %s:\n%s", addr, p.Log())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				p.Stop()
				return nil, fmt.Errorf("nginx did not listen on %s within 30s:\n%s", addr, p.Log())
			}
		}
	}
	return p, nil
}

// Pid is the master process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop stops nginx (SIGTERM: its master stops the workers, then exits)
// and waits; a master that has not exited after 10 s is killed with its
// whole process group.
func (p *Process) Stop() {
	terminate(p.cmd.Process.Pid)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		killGroup(p.cmd.Process.Pid)
		<-p.exited
	}
}

// Remove deletes nginx's folder, once it is stopped.
func (p *Process) Remove() error { return os.RemoveAll(p.Dir) }

// Log returns nginx's error log and what it wrote to standard error.
func (p *Process) Log() string {
	var b strings.Builder
	for _, f := range []string{"stderr.log", "error.log"} {
		data, _ := os.ReadFile(filepath.Join(p.Dir, f))
		b.Write(data)
	}
	return b.String()
}

// AccessLog returns the access log (with Options.AccessLog).
func (p *Process) AccessLog() string {
	data, _ := os.ReadFile(filepath.Join(p.Dir, "access.log"))
	return string(data)
}
