// Command testpg runs a command, typically the test suite, against a
// throwaway PostgreSQL server:
//
//	go run ./cmd/testpg -- go test ./...
//
// It starts one private, non-durable server (see package pglocal) in a fresh
// temporary directory, passes its URL to the command as
// AUTH_TEST_DATABASE_URL, and removes the server and its directory when the
// command ends, exiting with the command's exit code. One server per run
// keeps the tests fast without needing any database set up beforehand.
//
// If AUTH_TEST_DATABASE_URL is already set, the command simply runs against
// that database.
//
// With -pgbouncer, it also starts PgBouncer in transaction pooling mode in
// front of the server and passes its URL as AUTH_TEST_POOLER_URL: the
// tests then reach their databases through it, as authapi does when
// deployed behind PgBouncer (see store/storetest).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"authapi/pglocal"
)

const (
	envURL = "AUTH_TEST_DATABASE_URL"
	// envPoolerURL names the variable through which the tests learn of a
	// connection pooler in front of the test server (see store/storetest).
	envPoolerURL = "AUTH_TEST_POOLER_URL"
	startTimeout = time.Minute
	stopTimeout  = 30 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run runs the command in args and returns the exit code for testpg.
func run(args []string, stderr io.Writer) int {
	bouncer := len(args) > 0 && args[0] == "-pgbouncer"
	if bouncer {
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testpg [-pgbouncer] -- command [args...]")
		return 2
	}

	// Catch SIGINT and SIGTERM for the whole run: during start-up they abort
	// the start, later they are forwarded to the command. Either way testpg
	// lives on to stop the server and clean up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if os.Getenv(envURL) != "" {
		if bouncer {
			fmt.Fprintf(stderr, "testpg: -pgbouncer starts its own PostgreSQL; unset %s\n", envURL)
			return 2
		}
		return runCommand(args, nil, nil, sigs, stderr)
	}

	tmp, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		fmt.Fprintf(stderr, "testpg: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	srv, err := startServer(filepath.Join(tmp, "data"), sigs)
	if err != nil {
		fmt.Fprintf(stderr, "testpg: %v\n", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			fmt.Fprintf(stderr, "testpg: %v\n", err)
		}
	}()
	env := []string{envURL + "=" + srv.URL("postgres")}
	if bouncer {
		b, err := startBouncer(srv, sigs)
		if err != nil {
			fmt.Fprintf(stderr, "testpg: %v\n", err)
			return 1
		}
		defer func() {
			if err := b.stop(); err != nil {
				fmt.Fprintf(stderr, "testpg: %v\n", err)
			}
			os.RemoveAll(b.dir)
		}()
		env = append(env, envPoolerURL+"="+b.URL("postgres"))
	}
	return runCommand(args, env, srv.Exited(), sigs, stderr)
}

// startBouncer starts PgBouncer in front of srv, giving up on a signal.
func startBouncer(srv *pglocal.Server, sigs <-chan os.Signal) (*pgBouncer, error) {
	ctx, cancel := startContext(sigs)
	defer cancel()
	// A folder of its own under the system's temporary folder: the
	// server's user must reach it, and our own temporary folder is ours
	// alone.
	dir, err := os.MkdirTemp("", "testpg-bouncer-")
	if err != nil {
		return nil, err
	}
	b, err := startPgBouncer(ctx, dir, srv.URL("postgres"))
	if err != nil {
		os.RemoveAll(dir)
	}
	return b, err
}

// startServer starts the throwaway server, giving up on a signal.
func startServer(dir string, sigs <-chan os.Signal) (*pglocal.Server, error) {
	ctx, cancel := startContext(sigs)
	defer cancel()
	return pglocal.Start(ctx, pglocal.Config{Dir: dir, Ephemeral: true})
}

// startContext bounds a start-up by startTimeout and ends it early on a
// signal.
func startContext(sigs <-chan os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// runCommand runs args with our stdin, stdout and stderr and the variables
// in env added to our environment, watching the server that exited
// reports on (nil: none), and returns its exit code.
func runCommand(args, env []string, exited <-chan struct{}, sigs <-chan os.Signal, stderr io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testpg: %v\n", err)
		return 127
	}

	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				// A terminal's Ctrl-C reaches the command anyway; a SIGTERM
				// sent to testpg alone would not.
				_ = cmd.Process.Signal(sig)
			case <-exited:
				fmt.Fprintln(stderr, "testpg: the PostgreSQL server exited unexpectedly")
				exited = nil
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return exitCode(err, stderr)
}

// exitCode turns cmd.Wait's result into an exit code, following the shell's
// 128+N convention for a command killed by signal N.
func exitCode(err error, stderr io.Writer) int {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exitErr.ExitCode()
	default:
		fmt.Fprintf(stderr, "testpg: %v\n", err)
		return 1
	}
}
