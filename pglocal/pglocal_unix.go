//go:build unix

package pglocal

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"authapi/internal/deathsig"
)

// errPlatform is nil where the embedded PostgreSQL runs.
var errPlatform error

// account is the OS user the server runs as.
type account struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: run as ourselves
}

// serverAccount picks the user to run PostgreSQL as. PostgreSQL refuses to
// run as root, and development machines and CI often are root, so root hands
// the server to the postgres user (created by Debian's package) or, failing
// that, nobody.
func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		// Groups is left empty on purpose: the child must not keep root's
		// supplementary groups.
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		return account{name: name, uid: uid, gid: gid, cred: cred}, nil
	}
	return account{}, errors.New("pglocal: running as root and neither the postgres nor the nobody user exists; " +
		"PostgreSQL refuses to run as root")
}

func (a account) String() string {
	if a.name == "" {
		return fmt.Sprintf("uid %d", a.uid)
	}
	return fmt.Sprintf("%s (uid %d)", a.name, a.uid)
}

// chown hands path to the account; running as ourselves needs nothing.
func (a account) chown(path string) error {
	if a.cred == nil {
		return nil
	}
	return os.Chown(path, a.uid, a.gid)
}

// sysProcAttr ties a child to our process.
//
// Death signal (Linux only): if we die, even by SIGKILL, the child gets
// deathSig (for postgres SIGINT, a fast shutdown; its backends follow the
// postmaster). Elsewhere a postgres whose authapi was killed outlives it,
// and the next start is refused by postgres itself, naming that server's
// pid; stop it with kill -INT.
//
// Setpgid: a terminal's Ctrl-C goes to our process group only, so we get to
// stop the server ourselves, in order (after draining HTTP), rather than
// have it vanish under in-flight requests.
func (a account) sysProcAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Credential: a.cred, Setpgid: true}
	deathsig.Set(attr, deathSig)
	return attr
}

// checkOwner turns PostgreSQL's refusal to use a data directory owned by
// another user into an error that names the real directory.
func checkOwner(dir string, acct account) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pglocal: data directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != acct.uid {
		return fmt.Errorf("pglocal: data directory %s belongs to uid %d, but the server runs as %s; "+
			"PostgreSQL only starts on a data directory owned by its own user", dir, st.Uid, acct)
	}
	return nil
}
