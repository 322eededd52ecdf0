//go:build ha

package ha_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"authapi/internal/deathsig"
)

// Everything runs on loopback, on ports free when the test starts.
const (
	host  = "127.0.0.1"
	scope = "authapi-ha" // the Patroni cluster's name
	// The test's own superuser; the members trust loopback connections.
	superuser = "postgres"
)

// account is the OS user etcd, Patroni and PostgreSQL run as: ourselves,
// or when we are root (PostgreSQL refuses root) the postgres user that
// Debian's package creates.
type account struct {
	cred     *syscall.Credential // nil: ourselves
	uid, gid int
}

func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, fmt.Errorf("running as root, and no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

// mkdir makes a folder the account owns.
func (a account) mkdir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	return os.Chown(path, a.uid, a.gid)
}

// binDir is the newest PostgreSQL's bin folder of Debian's packages, which
// are not on PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err == nil && v > bestVersion {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				best, bestVersion = d, v
			}
		}
	}
	if best == "" {
		return "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql")
	}
	return best, nil
}

// freePort returns a TCP port of host that nothing listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a process of the cluster (etcd, a Patroni), in a process group
// of its own so that it can be ended with everything it started, but for
// PostgreSQL, which Patroni starts in a session of its own.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // its output, in a file
	exited chan struct{}
}

// start runs argv as the account, its output into a log file in dir. The
// process is told to end (sig) if the test binary dies, and ended at the
// end of the test by stop, which must be registered by the caller.
func start(t *testing.T, acct account, dir, name string, sig syscall.Signal, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred, Setpgid: true}
	deathsig.Set(cmd.SysProcAttr, sig)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p
}

// stop sends sig, waits up to grace, then kills the process group.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	syscall.Kill(p.cmd.Process.Pid, sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// cluster is a single-member etcd and three PostgreSQL members under
// Patroni in synchronous mode.
type cluster struct {
	t        *testing.T
	acct     account
	dir      string
	etcdPort int
	etcd     *proc
	members  []*member
	admin    *sql.DB // the primary's postgres database, wherever it is
}

// member is one Patroni and the PostgreSQL it runs.
type member struct {
	name    string
	dir     string
	pgPort  int
	apiPort int
	config  string // Patroni's configuration file
	patroni *proc
}

// dataDir is the member's PostgreSQL data folder.
func (m *member) dataDir() string { return filepath.Join(m.dir, "data") }

// MustStartCluster starts etcd and three Patroni members, and waits until
// one of them is the primary and the other two replicate from it, one
// synchronously. Everything is stopped at the end of the test.
func MustStartCluster(t *testing.T) *cluster {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"etcd", "patroni", "patronictl"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s not found: apt-get install patroni etcd-server (.ci/run does)", cmd)
		}
	}
	acct, err := serverAccount()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is ours (0700), which the account could
	// not traverse.
	dir, err := os.MkdirTemp("", "authapi-ha-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, acct.uid, acct.gid); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, acct: acct, dir: dir}
	t.Cleanup(func() {
		c.stop()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("cluster files kept in %s", dir)
		}
	})

	c.etcdPort = freePort(t)
	peerPort := freePort(t)
	etcdDir := filepath.Join(dir, "etcd")
	if err := acct.mkdir(etcdDir); err != nil {
		t.Fatal(err)
	}
	client, peer := fmt.Sprintf("http://%s:%d", host, c.etcdPort), fmt.Sprintf("http://%s:%d", host, peerPort)
	c.etcd = start(t, acct, etcdDir, "etcd", syscall.SIGKILL, "etcd", "--name", "ha", "--data-dir", filepath.Join(etcdDir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ha="+peer, "--initial-cluster-state", "new", "--log-level", "warn")
	if err := waitHTTP(client+"/health", 30*time.Second); err != nil {
		t.Fatalf("etcd did not come up: %v\n%s", err, c.etcd.tail(30))
	}

	for i := range 3 {
		m := &member{name: fmt.Sprintf("pg%d", i), pgPort: freePort(t), apiPort: freePort(t)}
		m.dir = filepath.Join(dir, m.name)
		if err := acct.mkdir(m.dir); err != nil {
			t.Fatal(err)
		}
		m.config = filepath.Join(m.dir, "patroni.yml")
		if err := writeConfig(m, bin, c.etcdPort); err != nil {
			t.Fatal(err)
		}
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		m.patroni = start(t, acct, m.dir, "patroni", syscall.SIGTERM, "patroni", m.config)
	}
	c.MustWaitHealthy(2 * time.Minute)
	c.admin, err = sql.Open("postgres", c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.admin.Close() })
	return c
}

// writeConfig writes the member's Patroni configuration (JSON, which is
// YAML). The settings that matter for authapi are in docs/deployment.md.
func writeConfig(m *member, bin string, etcdPort int) error {
	addr := func(port int) string { return fmt.Sprintf("%s:%d", host, port) }
	cfg := map[string]any{
		"scope": scope,
		"name":  m.name,
		"log":   map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen": addr(m.apiPort), "connect_address": addr(m.apiPort),
		},
		"etcd3": map[string]any{"hosts": []string{addr(etcdPort)}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				// A crash or a lost leader is acted on within a second or
				// two rather than Patroni's default tens of seconds.
				"ttl": 10, "loop_wait": 1, "retry_timeout": 3,
				// Fail over at once when the primary crashes, rather than
				// restart it in place for up to five minutes.
				"primary_start_timeout": 0,
				// Every commit is on a standby before it is acknowledged,
				// and only that standby may be promoted.
				"synchronous_mode":        true,
				"maximum_lag_on_failover": 1 << 20,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters":    map[string]any{"wal_keep_size": "128MB", "max_connections": 100},
				},
			},
			"initdb": []any{map[string]string{"encoding": "UTF8"}, map[string]string{"locale": "C"}},
		},
		"postgresql": map[string]any{
			"listen":          addr(m.pgPort),
			"connect_address": addr(m.pgPort),
			"data_dir":        m.dataDir(),
			"bin_dir":         bin,
			"pgpass":          filepath.Join(m.dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]string{"username": superuser, "password": "ha-superuser"},
				"replication": map[string]string{"username": "replicator", "password": "ha-replicator"},
			},
			"parameters": map[string]any{"unix_socket_directories": m.dir},
			"pg_hba": []string{
				"local all all trust",
				"host all all 127.0.0.1/32 trust",
				"host replication all 127.0.0.1/32 trust",
			},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(m.config, b, 0o644)
}

// URL is the database's URL as authapi gets it: every member, and lib/pq
// keeps only a connection to the one that takes writes.
func (c *cluster) URL(database string) string {
	ports := make([]string, len(c.members))
	hosts := make([]string, len(c.members))
	for i, m := range c.members {
		hosts[i], ports[i] = host, strconv.Itoa(m.pgPort)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?port=%s&target_session_attrs=read-write&sslmode=disable&connect_timeout=2",
		superuser, strings.Join(hosts, ","), database, strings.Join(ports, ","))
}

// stop ends every Patroni (each stops its PostgreSQL) and etcd; whatever
// is left of a PostgreSQL is killed.
func (c *cluster) stop() {
	for _, m := range c.members {
		if m.patroni == nil {
			continue
		}
		m.patroni.stop(syscall.SIGTERM, 30*time.Second)
		if c.t.Failed() {
			c.t.Logf("%s's Patroni log, last lines:\n%s", m.name, m.patroni.tail(60))
		}
	}
	for _, m := range c.members {
		// The postmaster leads a session and process group of its own.
		if pid, err := postmasterPID(m.dataDir()); err == nil && pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	if c.etcd != nil {
		c.etcd.stop(syscall.SIGTERM, 10*time.Second)
	}
}

// postmasterPID reads the first line of postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// memberState is one member as Patroni's /cluster describes it.
type memberState struct {
	Name  string `json:"name"`
	Role  string `json:"role"` // leader, sync_standby, replica
	State string `json:"state"`
	Lag   any    `json:"lag"` // bytes, or "unknown"
}

// states asks the members' Patroni for the cluster, from the first that
// answers.
func (c *cluster) states() ([]memberState, error) {
	var errs []error
	for _, m := range c.members {
		var body struct {
			Members []memberState `json:"members"`
		}
		if err := getJSON(fmt.Sprintf("http://%s:%d/cluster", host, m.apiPort), &body); err != nil {
			errs = append(errs, err)
			continue
		}
		return body.Members, nil
	}
	return nil, errors.Join(errs...)
}

// Leader returns the member that Patroni has made the primary and whose
// PostgreSQL runs as one, or nil.
func (c *cluster) Leader() *member {
	for _, m := range c.members {
		resp, err := httpClient.Get(fmt.Sprintf("http://%s:%d/primary", host, m.apiPort))
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return m
		}
	}
	return nil
}

// member returns the member named name.
func (c *cluster) member(name string) *member {
	i := slices.IndexFunc(c.members, func(m *member) bool { return m.name == name })
	if i < 0 {
		c.t.Fatalf("no member %s", name)
	}
	return c.members[i]
}

// MustWaitHealthy waits until there is a primary, every member runs, and
// the primary has a synchronous standby that streams from it: the state in
// which a failover can lose nothing.
func (c *cluster) MustWaitHealthy(timeout time.Duration) {
	c.t.Helper()
	var last string
	_, err := waitFor(timeout, 100*time.Millisecond, func() bool {
		states, err := c.states()
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := json.Marshal(states)
		last = string(b)
		var leader, sync, running int
		for _, s := range states {
			if s.State == "running" || s.State == "streaming" {
				running++
			}
			switch s.Role {
			case "leader":
				leader++
			case "sync_standby":
				if lag, ok := s.Lag.(float64); ok && lag == 0 {
					sync++
				}
			}
		}
		if leader != 1 || sync < 1 || running != len(c.members) {
			return false
		}
		// Patroni's view, checked against PostgreSQL's own.
		return c.syncStreaming() == nil
	})
	if err != nil {
		for _, m := range c.members {
			c.t.Logf("%s's Patroni log, last lines:\n%s", m.name, m.patroni.tail(40))
		}
		c.t.Fatalf("the cluster was not healthy within %v; last seen: %s", timeout, last)
	}
}

// syncStreaming checks on the primary that a standby replicates
// synchronously and every other one streams.
func (c *cluster) syncStreaming() error {
	db, err := sql.Open("postgres", c.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var syncs, streaming int
	err = db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE sync_state = 'sync'), count(*) FILTER (WHERE state = 'streaming')
		FROM pg_stat_replication`).Scan(&syncs, &streaming)
	if err != nil {
		return err
	}
	if syncs < 1 || streaming < len(c.members)-1 {
		return fmt.Errorf("%d synchronous and %d streaming standbys", syncs, streaming)
	}
	return nil
}

// SyncStandby returns the member that replicates synchronously.
func (c *cluster) SyncStandby() *member {
	c.t.Helper()
	states, err := c.states()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range states {
		if s.Role == "sync_standby" {
			return c.member(s.Name)
		}
	}
	c.t.Fatalf("no synchronous standby: %+v", states)
	return nil
}

// KillPrimary sends SIGKILL to the primary's postmaster (only: its
// backends and Patroni see it die) and returns when.
func (c *cluster) KillPrimary(m *member) time.Time {
	c.t.Helper()
	pid, err := postmasterPID(m.dataDir())
	if err != nil {
		c.t.Fatal(err)
	}
	at := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 %s's postmaster (%d): %v", m.name, pid, err)
	}
	return at
}

// Switchover asks Patroni, through patronictl, to hand the primary's role
// from leader to candidate, and returns when it was asked and patronictl's
// output.
func (c *cluster) Switchover(leader, candidate *member) (time.Time, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	at := time.Now()
	out, err := exec.CommandContext(ctx, "patronictl", "-c", leader.config, "switchover", scope,
		"--leader", leader.name, "--candidate", candidate.name, "--force").CombinedOutput()
	if err != nil {
		c.t.Fatalf("patronictl switchover: %v\n%s", err, out)
	}
	return at, string(out)
}

// MustWaitPromoted waits until a member other than old runs as the
// primary, and returns it.
func (c *cluster) MustWaitPromoted(old *member, timeout time.Duration) *member {
	c.t.Helper()
	var now *member
	if _, err := waitFor(timeout, 20*time.Millisecond, func() bool {
		now = c.Leader()
		return now != nil && now != old
	}); err != nil {
		c.t.Fatalf("no member but %s became the primary within %v", old.name, timeout)
	}
	return now
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s = %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// waitHTTP waits until url answers 200.
func waitHTTP(url string, timeout time.Duration) error {
	_, err := waitFor(timeout, 50*time.Millisecond, func() bool {
		resp, err := httpClient.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return err
}

// waitFor polls cond every interval until it holds or timeout passes, and
// returns how long it took.
func waitFor(timeout, interval time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), errors.New("timed out")
		}
		time.Sleep(interval)
	}
}
