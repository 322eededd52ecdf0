//go:build unix

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"

	"authapi/internal/deathsig"
)

// bouncerPort only names PgBouncer's socket file: it listens on no TCP port.
const bouncerPort = 6432

// pgBouncer is a PgBouncer in transaction pooling mode in front of a test
// server, as operators commonly run PostgreSQL.
type pgBouncer struct {
	cmd    *exec.Cmd
	dir    string
	exited chan struct{}
}

// startPgBouncer starts PgBouncer in dir, in front of the server whose
// URL is serverURL (a pglocal URL: a unix socket, trusted), and waits until
// it answers. It accepts connections on a unix socket only, in dir, which
// like the server's is reachable by the server's OS user (and root) alone.
func startPgBouncer(ctx context.Context, dir, serverURL string) (*pgBouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/pgbouncer")
	}
	if err != nil {
		return nil, errors.New("pgbouncer not found: install Debian's pgbouncer package (apt-get install pgbouncer)")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	sock := u.Query().Get("host")
	// PgBouncer must run as the server's user to reach its socket (and
	// refuses to run as root anyway).
	fi, err := os.Stat(sock)
	if err != nil {
		return nil, err
	}
	owner := fi.Sys().(*syscall.Stat_t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Every database is passed through (the tests create one each), as
	// the server's superuser; trust, since only the socket's owner and
	// root can reach PgBouncer. Transaction pooling is what breaks session
	// state (advisory locks, LISTEN, prepared statements by name), so it
	// is the mode worth testing.
	ini := fmt.Sprintf(`[databases]
* = host=%s port=5432 user=%s

[pgbouncer]
unix_socket_dir = %s
listen_port = %d
auth_type = trust
auth_file = %s
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 10
max_user_connections = 150
query_wait_timeout = 60
log_connections = 0
log_disconnections = 0
`, sock, u.User.Username(), dir, bouncerPort, filepath.Join(dir, "users.txt"))
	files := map[string]string{"pgbouncer.ini": ini, "users.txt": fmt.Sprintf("%q \"\"\n", u.User.Username())}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "users.txt")} {
		if err := os.Chown(p, int(owner.Uid), int(owner.Gid)); err != nil && os.Geteuid() == 0 {
			return nil, err
		}
	}

	// Its log (a line per database it meets) goes to a file, shown when
	// something goes wrong.
	logFile, err := os.Create(filepath.Join(dir, "pgbouncer.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	deathsig.Set(cmd.SysProcAttr, syscall.SIGKILL)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: owner.Uid, Gid: owner.Gid}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	b := &pgBouncer{cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(b.exited)
	}()
	if err := b.awaitReady(ctx); err != nil {
		b.stop()
		return nil, fmt.Errorf("%w%s", err, b.logTail())
	}
	return b, nil
}

// URL returns the URL of database through PgBouncer.
func (b *pgBouncer) URL(database string) string {
	return (&url.URL{Scheme: "postgres", User: url.User("authapi"), Path: "/" + database, RawQuery: url.Values{
		"host": {b.dir}, "port": {fmt.Sprint(bouncerPort)}, "sslmode": {"disable"},
	}.Encode()}).String()
}

func (b *pgBouncer) awaitReady(ctx context.Context) error {
	db, err := sql.Open("postgres", b.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		if err == nil {
			return nil
		}
		select {
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited before accepting connections (%v)", b.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer did not answer: %w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts PgBouncer down (SIGINT: safe shutdown) and waits for it.
func (b *pgBouncer) stop() error {
	b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
	}
	if st := b.cmd.ProcessState; !st.Success() {
		return fmt.Errorf("pgbouncer: %v%s", st, b.logTail())
	}
	return nil
}

// logTail returns the last lines of PgBouncer's log, for an error message.
func (b *pgBouncer) logTail() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return "\npgbouncer's log (last lines):\n\t" + strings.Join(lines[max(0, len(lines)-20):], "\n\t")
}
