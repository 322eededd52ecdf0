package main

// Growth (`make bench-growth`): the same operations against a small
// database and against one of a million users and a million keys,
// measured alternately in one run, as ratios large/small; the start-up
// time and each migration of the current round on the large database;
// the process's peak memory; and the credential cache's hit rate under a
// skewed load for several cache sizes.
//
// Both databases live in one PostgreSQL of the bench's own (pglocal,
// ephemeral: no fsync). They are bulk-loaded in SQL at the schema as of
// migration preRoundVersion, the last before this round's, kept as
// templates (reused by later runs with -data), cloned, and migrated to
// the newest version one migration at a time, the large one timed and
// probed by requests meanwhile: a migration that holds a long exclusive
// lock shows as requests that wait.

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"authapi/apikey"
	"authapi/internal/authproc"
	"authapi/internal/bench"
	"authapi/internal/deathsig"
	"authapi/migrations"
	"authapi/password"
	"authapi/pglocal"
)

// preRoundVersion is the newest migration before the current round: the
// databases are loaded at it, and the later ones are timed.
const preRoundVersion = 5

// The bench's secrets: the loaded digests are HMACs under this pepper.
const (
	growthJWTSecret = "growth-bench-jwt-secret-0123456789abcdef"
	growthPepper    = "growth-bench-api-key-pepper-0123456789"
	benchPassword   = "secureP@ss123"
)

type growthOptions struct {
	users      int    // users, and keys, of the large database
	cycleKeys  int    // distinct keys of the cycling case, in both databases
	opsCache   int    // AUTH_CREDENTIAL_CACHE_SIZE of the comparison
	skewKeys   int    // distinct keys of the skewed case, in the large database
	cacheSizes []int  // AUTH_CREDENTIAL_CACHE_SIZE values of the skewed case
	data       string // folder of the bench's PostgreSQL, kept when set
	buffers    string // PostgreSQL's shared_buffers
	conns      int
}

// growthFlags registers the growth bench's flags.
func growthFlags(g *growthOptions) *string {
	flag.IntVar(&g.users, "users", 1_000_000, "growth: users, and keys, of the large database")
	flag.IntVar(&g.cycleKeys, "cycle-keys", 40_000, "growth: distinct keys of the cycling case")
	flag.IntVar(&g.opsCache, "ops-cache-size", 10_000, "growth: AUTH_CREDENTIAL_CACHE_SIZE of the small/large comparison (below -cycle-keys)")
	flag.IntVar(&g.skewKeys, "skew-keys", 100_000, "growth: distinct keys of the skewed case (80% of requests on 10% of them)")
	flag.StringVar(&g.data, "data", "", "growth: folder for the bench's PostgreSQL, kept (with the loaded templates) for later runs; empty: a temporary one")
	flag.IntVar(&g.conns, "conns", 32, "growth: wrk connections")
	flag.StringVar(&g.buffers, "shared-buffers", "1GB", "growth: PostgreSQL's shared_buffers (the large database takes about 700 MB)")
	return flag.String("cache-sizes", "1000,10000,25000,50000,100000", "growth: credential cache sizes of the skewed case")
}

// runGrowth runs the growth bench.
func runGrowth(o options, g growthOptions) error {
	ctx := context.Background()
	dir := g.data
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "authbench-growth-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf("PostgreSQL in %s", dir)
	pg, admin, err := startPostgres(ctx, dir, g.buffers)
	if err != nil {
		return err
	}
	defer pg.Stop(context.Background())
	defer admin.Close()

	keys, err := knownKeys(max(g.cycleKeys, g.skewKeys))
	if err != nil {
		return err
	}
	rep := &growthReport{opts: o, g: g, loadBefore: bench.Loadavg()}
	if err := admin.QueryRowContext(ctx, `SHOW server_version`).Scan(&rep.pgVersion); err != nil {
		return err
	}
	small, large := "growth_small", "growth_large"
	begin := time.Now()
	for _, db := range []struct {
		name string
		cyc  int
		all  int
	}{{small, g.cycleKeys, g.cycleKeys}, {large, g.skewKeys, g.users}} {
		loaded, err := ensureTemplate(ctx, pg, admin, db.name+"_v"+strconv.Itoa(preRoundVersion), keys[:db.cyc], db.all)
		if err != nil {
			return fmt.Errorf("load %s: %w", db.name, err)
		}
		if loaded > 0 {
			rep.loads = append(rep.loads, fmt.Sprintf("%s: %v", db.name, loaded.Round(time.Second)))
		}
		if err := clone(ctx, admin, db.name+"_v"+strconv.Itoa(preRoundVersion), db.name); err != nil {
			return err
		}
	}
	logf("databases ready after %v", time.Since(begin).Round(time.Second))
	rep.sizes = map[string]string{}
	for _, db := range []string{small, large} {
		var users, keys int
		var size string
		if err := queryRow(ctx, pg.URL(db), `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM api_keys), pg_size_pretty(pg_database_size(current_database()))`, &users, &keys, &size); err != nil {
			return err
		}
		rep.sizes[db] = fmt.Sprintf("%s users, %s keys, %s", bench.Commas(float64(users)), bench.Commas(float64(keys)), size)
	}

	// This round's migrations: the small database untimed, the large one
	// timed with an instance of the previous schema serving meanwhile.
	if _, err := migrate(ctx, pg.URL(small), nil); err != nil {
		return err
	}
	if rep.migrations, err = migrateProbed(ctx, pg.URL(large), keys[:g.cycleKeys]); err != nil {
		return err
	}

	// Start-up: to "listening", alternately, on migrated databases.
	env := func(db string, extra ...string) []string {
		return append([]string{"AUTH_DATABASE_URL=" + pg.URL(db)}, extra...)
	}
	rep.startup = map[string][]time.Duration{}
	for range o.runs {
		for _, db := range []string{small, large} {
			in, err := startInstance(o, dir, admin, db, env(db))
			if err != nil {
				return err
			}
			rep.startup[db] = append(rep.startup[db], in.startup)
			in.stop()
		}
	}

	// The operations, alternately.
	instances := map[string]*instance{}
	for _, db := range []string{small, large} {
		in, err := startInstance(o, dir, admin, db, env(db, "AUTH_CREDENTIAL_CACHE_SIZE="+strconv.Itoa(g.opsCache)))
		if err != nil {
			return err
		}
		defer in.stop()
		if err := in.prepare(); err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
		instances[db] = in
	}
	cycleFile, err := writeKeys(dir, "cycle.keys", keys[:g.cycleKeys])
	if err != nil {
		return err
	}
	rep.ops = map[string]map[string][]opRun{}
	for _, op := range growthOps(cycleFile, g.conns) {
		rep.opNames = append(rep.opNames, op.name)
		rep.ops[op.name] = map[string][]opRun{}
		for _, db := range []string{small, large} {
			// Unrecorded: fills the caches, warms the database.
			if _, err := instances[db].load(op.script(instances[db]), g.conns, 2*time.Second); err != nil {
				return fmt.Errorf("%s on %s: %w", op.name, db, err)
			}
		}
		for run := range o.runs {
			for _, db := range []string{small, large} {
				r, err := instances[db].load(op.script(instances[db]), g.conns, o.duration)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", op.name, db, err)
				}
				logf("  %-44s %-13s run %d: %9.1f/s p50 %-9v p99 %-9v errors %d hit rate %s CPU/request: authapi %v, PostgreSQL %v", op.name, db, run+1, r.rps, r.p50, r.p99, r.errors, percent(r.hitRate), r.cpuServer, r.cpuDB)
				rep.ops[op.name][db] = append(rep.ops[op.name][db], r)
			}
		}
	}
	rep.peakRSS = map[string]int64{}
	rep.updates = map[string]string{}
	for _, db := range []string{small, large} {
		rep.peakRSS[db] = peakRSS(instances[db].pid())
		instances[db].stop()
	}
	time.Sleep(time.Second) // the backends' exits report their statistics
	for _, db := range []string{small, large} {
		var upd, hot, vacuums int64
		if err := queryRow(ctx, pg.URL(db), `SELECT n_tup_upd, n_tup_hot_upd, autovacuum_count FROM pg_stat_user_tables WHERE relname = 'api_keys'`, &upd, &hot, &vacuums); err != nil {
			return err
		}
		rep.updates[db] = fmt.Sprintf("%s rows updated, %s of them in place (HOT, no index entries), %d autovacuums", bench.Commas(float64(upd)), bench.Commas(float64(hot)), vacuums)
	}

	// The cache at scale: a skewed load over more keys than the cache
	// holds, on the large database.
	skewFile, err := writeKeys(dir, "skew.keys", keys[:g.skewKeys])
	if err != nil {
		return err
	}
	for _, size := range g.cacheSizes {
		in, err := startInstance(o, dir, admin, large, env(large, "AUTH_CREDENTIAL_CACHE_SIZE="+strconv.Itoa(size)))
		if err != nil {
			return err
		}
		script := skewScript(skewFile, g.skewKeys/10)
		// PostgreSQL's backends report their index scans when they exit
		// (or now and then): count from before the warm-up until the
		// instance has stopped, against all its misses.
		scans0, err := digestIndexScans(ctx, pg.URL(large))
		if err != nil {
			in.stop()
			return err
		}
		// A pass over as many keys as the cache holds, the hot ones first,
		// fills it; then a run of the skewed load lets it settle, as in a
		// process that has run for a while.
		if err := in.pass(keys[:min(size, g.skewKeys)], g.conns); err != nil {
			in.stop()
			return err
		}
		if _, err := in.load(script, g.conns, o.duration); err != nil {
			in.stop()
			return err
		}
		var runs []opRun
		for range o.runs {
			r, err := in.load(script, g.conns, o.duration)
			if err != nil {
				in.stop()
				return err
			}
			runs = append(runs, r)
		}
		_, misses, err := in.verifications()
		if err != nil {
			in.stop()
			return err
		}
		s := skewRun{size: size, runs: runs, rss: peakRSS(in.pid())}
		in.stop()
		time.Sleep(time.Second) // the backends' exits
		scans1, err := digestIndexScans(ctx, pg.URL(large))
		if err != nil {
			return err
		}
		if misses > 0 {
			s.scansPerMiss = float64(scans1-scans0) / misses
		}
		logf("  skewed load, cache size %-7d hit rate %s, %.1f/s, digest index scans per miss %.2f, peak RSS %s", size, percent(bench.Median(hitRates(runs))), bench.Median(rates(runs)), s.scansPerMiss, mib(s.rss))
		rep.skew = append(rep.skew, s)
	}
	if rep.plan, err = explainKeyLookup(ctx, pg.URL(large), keys[0]); err != nil {
		return err
	}

	rep.loadAfter = bench.Loadavg()
	text := rep.format()
	fmt.Print(text)
	if o.out != "" {
		return writeSection(o.out, "bench-growth", text)
	}
	return nil
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// startPostgres starts the bench's PostgreSQL in dir with shared_buffers
// set (a server restart, the first time) and opens its postgres database.
func startPostgres(ctx context.Context, dir, buffers string) (*pglocal.Server, *sql.DB, error) {
	cfg := pglocal.Config{Dir: filepath.Join(dir, "pg"), Ephemeral: true}
	for attempt := 0; ; attempt++ {
		pg, err := pglocal.Start(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		admin, err := sql.Open("postgres", pg.URL("postgres"))
		if err == nil {
			var current string
			if err = admin.QueryRowContext(ctx, `SELECT current_setting('shared_buffers')`).Scan(&current); err == nil && current == buffers {
				return pg, admin, nil
			}
			if err == nil && attempt == 0 {
				_, err = admin.ExecContext(ctx, `ALTER SYSTEM SET shared_buffers = `+pq.QuoteLiteral(buffers))
			} else if err == nil {
				err = fmt.Errorf("shared_buffers is %s after a restart, want %s", current, buffers)
			}
			admin.Close()
		}
		pg.Stop(ctx)
		if err != nil {
			return nil, nil, err
		}
	}
}

// knownKey is an API key whose raw form the bench knows.
type knownKey struct {
	raw    string
	digest []byte
}

// knownKeys generates n keys, the same on every run (a seeded source), so
// that a kept database's digests stay usable.
func knownKeys(n int) ([]knownKey, error) {
	src := rand.NewChaCha8([32]byte([]byte("authapi growth bench known keys!")))
	d := apikey.NewDigester([]byte(growthPepper))
	keys := make([]knownKey, n)
	for i := range keys {
		raw, err := apikey.Generate(src)
		if err != nil {
			return nil, err
		}
		keys[i] = knownKey{raw: raw, digest: d.Digest(raw)}
	}
	return keys, nil
}

// ensureTemplate creates database name at preRoundVersion and loads it,
// unless a finished one is there: users cyc1..cycN, each with one of
// keys, then filler users, each with a key of random digest, up to all
// users. It returns how long the load took (0: reused).
func ensureTemplate(ctx context.Context, pg *pglocal.Server, admin *sql.DB, name string, keys []knownKey, all int) (time.Duration, error) {
	// A finished load leaves a comment on the database.
	var comment sql.NullString
	err := admin.QueryRowContext(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&comment)
	want := fmt.Sprintf("authbench growth: %d known keys, %d users", len(keys), all)
	if err == nil && comment.String == want {
		logf("reusing %s (%s)", name, want)
		return 0, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	logf("loading %s: %s", name, want)
	begin := time.Now()
	if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pq.QuoteIdentifier(name)); err != nil {
		return 0, err
	}
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(name)); err != nil {
		return 0, err
	}
	url := pg.URL(name)
	db, err := sql.Open("postgres", url)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return 0, err
	}
	if _, err := p.UpTo(ctx, preRoundVersion); err != nil {
		return 0, err
	}
	hash, err := sharedHash(ctx)
	if err != nil {
		return 0, err
	}
	if err := bulkLoad(ctx, db, keys, all, hash); err != nil {
		return 0, err
	}
	for _, stmt := range []string{`VACUUM (ANALYZE) users`, `VACUUM (ANALYZE) api_keys`, `CHECKPOINT`,
		`COMMENT ON DATABASE ` + pq.QuoteIdentifier(name) + ` IS ` + pq.QuoteLiteral(want)} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return 0, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	took := time.Since(begin)
	logf("loaded %s in %v", name, took.Round(time.Second))
	return took, nil
}

// sharedHash is the argon2id PHC string (server defaults) of
// benchPassword that every loaded user shares: hashing a million
// passwords would take hours and change nothing the bench measures.
func sharedHash(ctx context.Context) (string, error) {
	h, err := password.NewHasher(password.Params{Memory: argonMemory, Time: argonTime, Threads: argonThreads, SaltLen: 16, KeyLen: 32},
		password.Pool{Workers: 1, Queue: 1, MaxWait: time.Minute})
	if err != nil {
		return "", err
	}
	return h.Hash(ctx, benchPassword)
}

// bulkLoad fills the users and api_keys tables in SQL, with the triggers
// off (they would queue a notification per row) and no foreign key checks
// (the rows are consistent by construction): session_replication_role.
func bulkLoad(ctx context.Context, db *sql.DB, keys []knownKey, all int, hash string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	steps := []struct {
		sql  string
		args []any
	}{
		{`SET LOCAL session_replication_role = replica`, nil},
		{`SET LOCAL maintenance_work_mem = '256MB'`, nil},
		// Creation times spread over a year, as a grown database's are.
		{`INSERT INTO users (username, email, full_name, password_hash, created_at)
		  SELECT 'cyc' || g, 'cyc' || g || '@example.com', 'Bench user ' || g, $1,
		         now() - interval '1 year' + g * interval '1 second'
		  FROM generate_series(1, $2::int) g`, []any{hash, len(keys)}},
		{`INSERT INTO users (username, email, full_name, password_hash, created_at)
		  SELECT 'filler' || g, 'filler' || g || '@example.com', 'Filler ' || g, $1,
		         now() - interval '1 year' + g * (interval '1 year' / greatest($2::int, 1))
		  FROM generate_series(1, $2::int) g`, []any{hash, all - len(keys)}},
		{`CREATE TEMPORARY TABLE known_digests (n int PRIMARY KEY, prefix text NOT NULL, digest bytea NOT NULL) ON COMMIT DROP`, nil},
	}
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("%.60s: %w", s.sql, err)
		}
	}
	stmt, err := tx.PrepareContext(ctx, `COPY known_digests (n, prefix, digest) FROM STDIN`)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if _, err := stmt.ExecContext(ctx, i+1, apikey.DisplayPrefix(k.raw), k.digest); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	for _, q := range []string{
		`INSERT INTO api_keys (user_id, name, prefix, digest, created_at)
		 SELECT u.id, 'bench key', d.prefix, d.digest, u.created_at
		 FROM known_digests d JOIN users u ON lower(u.username) = 'cyc' || d.n`,
		// Random digests: keys nobody holds, as most of a large table's are
		// to any one client.
		`INSERT INTO api_keys (user_id, name, prefix, digest, created_at)
		 SELECT id, 'filler key', 'rst_' || substr(md5(username), 1, 4),
		        decode(md5(username) || md5(email), 'hex'), created_at
		 FROM users WHERE username LIKE 'filler%'`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s: %w", q, err)
		}
	}
	return tx.Commit()
}

// clone recreates name from template.
func clone(ctx context.Context, admin *sql.DB, template, name string) error {
	for _, stmt := range []string{
		`DROP DATABASE IF EXISTS ` + pq.QuoteIdentifier(name) + ` WITH (FORCE)`,
		`CREATE DATABASE ` + pq.QuoteIdentifier(name) + ` TEMPLATE ` + pq.QuoteIdentifier(template),
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

func queryRow(ctx context.Context, url, query string, dest ...any) error {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(ctx, query).Scan(dest...)
}

// migrationRun is one migration applied to the large database.
type migrationRun struct {
	name string
	took time.Duration
	// Statements of the previous schema's reads and writes meanwhile,
	// and the longest of them.
	requests, failed int
	slowest          time.Duration
}

// migrate applies the pending migrations one at a time, calling each
// before and after it (nil: nobody).
func migrate(ctx context.Context, url string, around func(before bool, r *goose.MigrationResult)) ([]*goose.MigrationResult, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return nil, err
	}
	var results []*goose.MigrationResult
	for {
		if around != nil {
			around(true, nil)
		}
		r, err := p.UpByOne(ctx)
		if errors.Is(err, goose.ErrNoNextVersion) {
			return results, nil
		}
		if err != nil {
			return results, err
		}
		if around != nil {
			around(false, r)
		}
		results = append(results, r)
	}
}

// migrateProbed applies the pending migrations to the large database
// while two clients read and write the tables as an instance of the
// previous schema does (a key lookup by digest, a key creation), straight
// in SQL: the binary measured is of the newest schema and cannot run on
// the previous one. It reports each migration's time and the statements
// meanwhile, so that a migration holding a long exclusive lock shows as a
// slow statement.
func migrateProbed(ctx context.Context, url string, keys []knownKey) ([]migrationRun, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var owner string
	if err := db.QueryRowContext(ctx, `SELECT id FROM users ORDER BY id LIMIT 1`).Scan(&owner); err != nil {
		return nil, err
	}
	lookup := func(i int) error {
		var id string
		return db.QueryRowContext(ctx, `SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id
			WHERE k.digest = $1 AND k.revoked_at IS NULL`, keys[i%len(keys)].digest).Scan(&id)
	}
	create := func(int) error {
		digest := make([]byte, 32)
		crand.Read(digest)
		_, err := db.ExecContext(ctx, `INSERT INTO api_keys (user_id, name, prefix, digest) VALUES ($1, 'probe', 'rst_prob', $2)`, owner, digest)
		return err
	}
	type probe struct {
		start time.Time
		took  time.Duration
		ok    bool
	}
	const clients = 2
	var (
		mu     sync.Mutex
		probes []probe
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		// When each client's request on its way began (Unix ns): a
		// migration's requests are counted once those that began before
		// its end have ended, the ones it held up included.
		current [clients]atomic.Int64
	)
	for w := range clients {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				begin := time.Now()
				current[w].Store(begin.UnixNano())
				var err error
				if i%2 == 0 {
					err = lookup(i)
				} else {
					err = create(i)
				}
				mu.Lock()
				probes = append(probes, probe{start: begin, took: time.Since(begin), ok: err == nil})
				mu.Unlock()
			}
		})
	}
	var runs []migrationRun
	var began time.Time
	_, err = migrate(ctx, url, func(before bool, r *goose.MigrationResult) {
		if before {
			began = time.Now()
			return
		}
		ended := time.Now()
		for w := range clients {
			for deadline := time.Now().Add(time.Minute); current[w].Load() < ended.UnixNano() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		m := migrationRun{name: filepath.Base(r.Source.Path), took: r.Duration}
		mu.Lock()
		for _, p := range probes {
			if p.start.Before(ended) && p.start.Add(p.took).After(began) {
				m.requests++
				if !p.ok {
					m.failed++
				}
				m.slowest = max(m.slowest, p.took)
			}
		}
		mu.Unlock()
		logf("  migration %s on the large database: %v, %d statements meanwhile (%d failed), slowest %v", m.name, m.took, m.requests, m.failed, m.slowest)
		runs = append(runs, m)
	})
	close(stop)
	wg.Wait()
	return runs, err
}

// instance is an authapi process of the growth bench.
type instance struct {
	db      string
	url     string
	cmd     *exec.Cmd
	exited  chan struct{}
	dir     string
	startup time.Duration // from exec to "listening"
	served  int           // requests loaded so far: where the cycling case goes on from
	admin   *sql.DB       // the server's postgres database, for its statistics
	dbName  string
	token   string // of "bench", who creates keys
	list    string // token of "lister", who owns three keys
	key     string // one of lister's
	hc      *http.Client
}

// startInstance starts the authapi binary with env and waits until it
// listens.
func startInstance(o options, dir string, admin *sql.DB, db string, env []string) (*instance, error) {
	logPath := filepath.Join(dir, "authapi-"+strings.Fields(db)[0]+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin)
	cmd.Env = append(os.Environ(),
		"AUTH_ADDR=127.0.0.1:0",
		"AUTH_JWT_SECRET="+growthJWTSecret,
		"AUTH_API_KEY_PEPPER="+growthPepper,
	)
	cmd.Env = append(cmd.Env, limitsOff()...) // as make bench
	cmd.Env = append(cmd.Env, o.extra...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logFile
	// Should the bench die, its servers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	deathsig.Set(cmd.SysProcAttr, syscall.SIGKILL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	in := &instance{db: db, cmd: cmd, exited: make(chan struct{}), dir: dir, admin: admin, dbName: strings.Fields(db)[0],
		hc: &http.Client{Transport: tr, Timeout: time.Minute}}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "authapi: listening on "); ok {
				listening <- u
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		logFile.Close()
		close(in.exited)
	}()
	select {
	case in.url = <-listening:
		in.startup = time.Since(begin)
	case <-in.exited:
		return nil, fmt.Errorf("authapi on %s exited; its log is %s", db, logPath)
	case <-time.After(5 * time.Minute):
		in.stop()
		return nil, fmt.Errorf("authapi on %s did not listen within 5 minutes; its log is %s", db, logPath)
	}
	return in, nil
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

// stop ends the process with SIGINT (SIGKILL after a minute).
func (in *instance) stop() {
	select {
	case <-in.exited:
		return
	default:
	}
	in.cmd.Process.Signal(os.Interrupt)
	select {
	case <-in.exited:
	case <-time.After(time.Minute):
		in.cmd.Process.Kill()
		<-in.exited
	}
}

// request sends one request; header holds name, value pairs.
func (in *instance) request(method, path, body string, header ...string) (int, error) {
	code, _, err := in.call(method, path, body, header...)
	return code, err
}

func (in *instance) call(method, path, body string, header ...string) (int, []byte, error) {
	req, err := authproc.NewRequest(context.Background(), method, in.url+path, body, header...)
	if err != nil {
		return 0, nil, err
	}
	resp, err := in.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// prepare registers (or, on a reused database, logs in) "bench" and
// "lister", and gives lister three keys.
func (in *instance) prepare() error {
	var err error
	s := &server{url: in.url}
	if in.token, err = loginOrRegister(s, "bench"); err != nil {
		return err
	}
	if in.list, err = loginOrRegister(s, "lister"); err != nil {
		return err
	}
	for i := range 3 {
		var k struct {
			RawKey string `json:"raw_key"`
		}
		if err := s.call("POST", "/v1/auth/api-keys", in.list, `{"name":"k`+strconv.Itoa(i)+`"}`, &k); err != nil {
			return err
		}
		in.key = k.RawKey
	}
	return nil
}

// loginOrRegister logs name in, registering it first if need be.
func loginOrRegister(s *server, name string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := s.call("POST", "/v1/auth/login", "", `{"username":"`+name+`","password":"`+benchPassword+`"}`, &tok); err == nil {
		return tok.AccessToken, nil
	}
	return s.user(name)
}

// backendCPU returns the CPU time so far of each PostgreSQL backend
// connected to the instance's database: the work done for its requests,
// without the server's own processes (autovacuum, checkpoints) or the
// bench's sessions.
func (in *instance) backendCPU() (map[int]time.Duration, error) {
	rows, err := in.admin.Query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, in.dbName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cpu := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		if t, ok := processCPU(pid); ok {
			cpu[pid] = t
		}
	}
	return cpu, rows.Err()
}

// processCPU reads the CPU time a process has used so far.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command may hold spaces: fields count from after its ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, err1 == nil && err2 == nil
}

// pass sends GET /v1/me once with each key, from conns clients.
func (in *instance) pass(keys []knownKey, conns int) error {
	next := make(chan string)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for raw := range next {
				if code, err := in.request("GET", "/v1/me", "", "X-API-Key", raw); err != nil || code != http.StatusOK {
					errs <- fmt.Errorf("GET /v1/me: %d %v", code, err)
					return
				}
			}
		})
	}
	go func() {
		defer close(next)
		for _, k := range keys {
			select {
			case next <- k.raw:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// opRun is one measured load.
type opRun struct {
	result
	hits, misses float64
	hitRate      float64 // -1: no API key was checked
}

// load runs script with wrk against the instance and reads the cache's
// hits and misses around it.
func (in *instance) load(script string, conns int, d time.Duration) (opRun, error) {
	h0, m0, err := in.verifications()
	if err != nil {
		return opRun{}, err
	}
	pg0, err := in.backendCPU()
	if err != nil {
		return opRun{}, err
	}
	r, err := (&server{dir: in.dir}).wrk(in.url, in.pid(), script, conns, d)
	if err != nil {
		return opRun{}, err
	}
	pg1, err := in.backendCPU()
	if err != nil {
		return opRun{}, err
	}
	h1, m1, err := in.verifications()
	if err != nil {
		return opRun{}, err
	}
	if r.requests > 0 {
		var used time.Duration
		for pid, t := range pg1 {
			// A backend opened meanwhile counts whole; one that ended is
			// lost, as is a process reusing its number.
			used += max(t-pg0[pid], 0)
		}
		r.cpuDB = used / time.Duration(r.requests)
	}
	in.served += r.requests
	run := opRun{result: r, hits: h1 - h0, misses: m1 - m0, hitRate: -1}
	if run.hits+run.misses > 0 {
		run.hitRate = run.hits / (run.hits + run.misses)
	}
	return run, nil
}

var verificationLine = regexp.MustCompile(`(?m)^authapi_api_key_verifications_total\{result="(hit|miss)"\} (\S+)$`)

// verifications reads the API key checks answered from the cache (hits)
// and from the database (misses) so far.
func (in *instance) verifications() (hits, misses float64, err error) {
	code, body, err := in.call("GET", "/metrics", "")
	if err != nil || code != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %d %v", code, err)
	}
	for _, m := range verificationLine.FindAllSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		if string(m[1]) == "hit" {
			hits = v
		} else {
			misses = v
		}
	}
	return hits, misses, nil
}

// growthOp is an operation of the comparison.
type growthOp struct {
	name   string
	script func(in *instance) string
}

func growthOps(cycleFile string, conns int) []growthOp {
	return []growthOp{
		{"GET /v1/me, one key (cached)", func(in *instance) string {
			return request("GET", "/v1/me", map[string]string{"X-API-Key": in.key}, "")
		}},
		{"GET /v1/me, cycling through more keys than the cache holds", func(in *instance) string {
			// Each run goes on where the last one stopped.
			return keyCycleScript(cycleFile, wrkThreads(conns), in.served)
		}},
		{"GET /v1/auth/api-keys (listing)", func(in *instance) string {
			return request("GET", "/v1/auth/api-keys", map[string]string{"Authorization": "Bearer " + in.list}, "")
		}},
		{"POST /v1/auth/api-keys (creation)", func(in *instance) string {
			return request("POST", "/v1/auth/api-keys", map[string]string{"Authorization": "Bearer " + in.token, "Content-Type": "application/json"}, `{"name":"bench"}`)
		}},
		{"POST /v1/auth/login", func(in *instance) string {
			return request("POST", "/v1/auth/login", map[string]string{"Content-Type": "application/json"}, `{"username":"bench","password":"`+benchPassword+`"}`)
		}},
		{"POST /v1/auth/register", func(in *instance) string { return registerScript() }},
	}
}

// writeKeys writes the raw keys, one a line, for the wrk scripts to read.
func writeKeys(dir, name string, keys []knownKey) (string, error) {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k.raw + "\n")
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, b.Bytes(), 0o600)
}

// luaKeys is the part of a script that reads the keys of a file, numbers
// the wrk threads from 1 and gives each a random seed of its own: wrk
// starts every run's threads afresh, and a seed that repeated would repeat
// the last run's requests, which the cache still holds.
func luaKeys(file string) string {
	return fmt.Sprintf(`local keys = {}
for line in io.lines(%q) do keys[#keys + 1] = line end
local counter = 1
function setup(thread) thread:set("id", counter); counter = counter + 1 end
local function seed()
  local f = io.open("/dev/urandom", "rb")
  local b = f:read(4)
  f:close()
  return ((b:byte(1) * 256 + b:byte(2)) * 256 + b:byte(3)) * 256 + b:byte(4)
end
local headers = {}
`, file)
}

// keyCycleScript sends GET /v1/me with each key of the file in turn from
// the start-th (0-based), the threads (wrk's -t) taking every threads-th
// key: each key comes back once per pass over the file, after all the
// others.
func keyCycleScript(file string, threads, start int) string {
	return luaKeys(file) + fmt.Sprintf(`local step = %d
local n = 0
function init(args) n = (%d + tonumber(wrk.thread:get("id")) - 1) %% #keys + 1 end
function request()
  headers["X-API-Key"] = keys[n]
  n = n + step
  if n > #keys then n = (n - 1) %% #keys + 1 end
  return wrk.format("GET", "/v1/me", headers)
end
`, threads, start)
}

// skewScript sends GET /v1/me with a key of the file: 80% of requests
// with one of the first hot keys, the others with one of the rest, each
// chosen uniformly.
func skewScript(file string, hot int) string {
	return luaKeys(file) + fmt.Sprintf(`local hot = %d
function init(args) math.randomseed(seed()) end
function request()
  local i
  if math.random() < 0.8 then i = math.random(hot) else i = hot + math.random(#keys - hot) end
  headers["X-API-Key"] = keys[i]
  return wrk.format("GET", "/v1/me", headers)
end
`, hot)
}

// digestIndexScans counts the scans of api_keys' digest index so far.
func digestIndexScans(ctx context.Context, url string) (int64, error) {
	var n int64
	err := queryRow(ctx, url, `SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'api_keys_digest_key'`, &n)
	return n, err
}

// explainKeyLookup returns the plan of a cache miss's lookup on the large
// database, run for one of its keys.
func explainKeyLookup(ctx context.Context, url string, k knownKey) ([]string, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
		SELECT k.id, u.id, u.username, u.email, u.full_name, u.created_at, k.scopes, k.expires_at
		FROM api_keys k JOIN users u ON u.id = k.user_id
		WHERE k.digest = '\x`+fmt.Sprintf("%x", k.digest)+`'::bytea AND k.revoked_at IS NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		plan = append(plan, line)
	}
	return plan, rows.Err()
}

// peakRSS reads a process's peak resident memory (VmHWM), in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10
		}
	}
	return 0
}

// skewRun is the skewed load at one cache size.
type skewRun struct {
	size         int
	runs         []opRun
	rss          int64
	scansPerMiss float64
}

func rates(runs []opRun) []float64 {
	var v []float64
	for _, r := range runs {
		v = append(v, r.rps)
	}
	return v
}

func hitRates(runs []opRun) []float64 {
	var v []float64
	for _, r := range runs {
		v = append(v, r.hitRate)
	}
	return v
}

func percent(v float64) string {
	if v < 0 {
		return "—"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// growthReport gathers the bench's figures.
type growthReport struct {
	opts       options
	g          growthOptions
	loads      []string
	sizes      map[string]string
	migrations []migrationRun
	startup    map[string][]time.Duration
	opNames    []string
	ops        map[string]map[string][]opRun
	peakRSS    map[string]int64
	updates    map[string]string // api_keys' updates during the comparison
	pgVersion  string
	loadBefore string // load averages (1, 5, 15 min) when the bench began
	loadAfter  string
	skew       []skewRun
	plan       []string
}

func (r *growthReport) format() string {
	const small, large = "growth_small", "growth_large"
	var b bytes.Buffer
	fmt.Fprintf(&b, "Reproduce: `make bench-growth GROWTH_FLAGS='-runs %d -duration %v'`.\n\n", r.opts.runs, r.opts.duration)
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s, %s; load average %s at the start, %s at the end); wrk -t2 -c%d on the same machine; medians of %d runs of %v per load, the two databases taking turns (small, large, small, …) after an unrecorded 2 s warm-up of each. ",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), r.loadBefore, r.loadAfter, r.g.conns, r.opts.runs, r.opts.duration)
	fmt.Fprintf(&b, "One PostgreSQL %s of the bench's own (no fsync, shared_buffers %s) holds both databases: small, %s; large, %s. ", strings.Fields(r.pgVersion)[0], r.g.buffers, r.sizes[small], r.sizes[large])
	fmt.Fprintf(&b, "Both were bulk-loaded in SQL at migration %d (every user shares one argon2id hash of the default parameters; %s keys have raw keys the bench knows, the rest random digests), then migrated. ",
		preRoundVersion, bench.Commas(float64(r.g.skewKeys)))
	if len(r.loads) > 0 {
		fmt.Fprintf(&b, "Loading took %s. ", strings.Join(r.loads, ", "))
	}
	fmt.Fprintf(&b, "authapi runs with its defaults but the throttles and the active-key cap (off, as in `make bench`), and a credential cache of %s keys, so that the cycling case's %s keys are %d times what it holds.\n\n",
		bench.Commas(float64(r.g.opsCache)), bench.Commas(float64(r.g.cycleKeys)), r.g.cycleKeys/r.g.opsCache)

	b.WriteString("| operation | req/s small | req/s large | large/small (target ≥ 0.9) | CPU µs/request small: authapi + PostgreSQL | large | CPU small/large | p99 small | p99 large | errors | cache hit rate small / large |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range r.opNames {
		s, l := r.ops[name][small], r.ops[name][large]
		rs, rl := bench.Median(rates(s)), bench.Median(rates(l))
		ratio := rl / rs
		met := map[bool]string{true: "", false: " **(missed)**"}[ratio >= 0.9]
		var p99s, p99l, cpuSS, cpuSD, cpuLS, cpuLD []time.Duration
		errs := 0
		for _, x := range s {
			p99s, errs = append(p99s, x.p99), errs+x.errors
			cpuSS, cpuSD = append(cpuSS, x.cpuServer), append(cpuSD, x.cpuDB)
		}
		for _, x := range l {
			p99l, errs = append(p99l, x.p99), errs+x.errors
			cpuLS, cpuLD = append(cpuLS, x.cpuServer), append(cpuLD, x.cpuDB)
		}
		cs, cl := bench.Median(cpuSS)+bench.Median(cpuSD), bench.Median(cpuLS)+bench.Median(cpuLD)
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f%s | %s + %s | %s + %s | %.2f | %s | %s | %d | %s / %s |\n", name, bench.Commas(rs), bench.Commas(rl), ratio, met,
			micros(bench.Median(cpuSS)), micros(bench.Median(cpuSD)), micros(bench.Median(cpuLS)), micros(bench.Median(cpuLD)), float64(cs)/float64(cl),
			bench.Round(bench.Median(p99s)), bench.Round(bench.Median(p99l)), errs, percent(bench.Median(hitRates(s))), percent(bench.Median(hitRates(l))))
	}
	fmt.Fprintf(&b, "\nCPU per request is read from /proc around each load: authapi's process, and PostgreSQL's backends serving its database (not autovacuum). The table api_keys during the comparison, where each key's last use is written at most once a minute: small, %s; large, %s.\n\n", r.updates[small], r.updates[large])
	fmt.Fprintf(&b, "Peak resident memory (VmHWM) of the instance that served all of the above: small %s, large %s.\n\n", mib(r.peakRSS[small]), mib(r.peakRSS[large]))

	fmt.Fprintf(&b, "Start-up, from exec to \"listening\" (schema up to date), medians of %d: small %v, large %v (all: %s; %s).\n\n", r.opts.runs,
		bench.Round(bench.Median(r.startup[small])), bench.Round(bench.Median(r.startup[large])), durations(r.startup[small]), durations(r.startup[large]))

	if len(r.migrations) == 0 {
		fmt.Fprintf(&b, "Migrations after %d: none on this branch.\n\n", preRoundVersion)
	} else {
		fmt.Fprintf(&b, "Migrations after %d, applied one at a time to the large database while two clients ran the previous schema's key lookup (by digest, joined to its user) and key creation, alternately, straight in SQL:\n\n", preRoundVersion)
		b.WriteString("| migration | took | statements meanwhile | failed | slowest |\n|---|---|---|---|---|\n")
		for _, m := range r.migrations {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %s |\n", m.name, bench.Round(m.took), m.requests, m.failed, bench.Round(m.slowest))
		}
		b.WriteString("\n")
	}

	fmt.Fprintf(&b, "The credential cache at scale: GET /v1/me on the large database with %s distinct keys, 80%% of requests on %s of them (each chosen uniformly within its group), for each `AUTH_CREDENTIAL_CACHE_SIZE`, after a pass over as many keys as the cache holds (the hot ones first) and an unrecorded run of the load, as in a process that has run for a while:\n\n",
		bench.Commas(float64(r.g.skewKeys)), bench.Commas(float64(r.g.skewKeys/10)))
	b.WriteString("| cache size | hit rate | req/s | p99 | digest index scans per miss | peak RSS |\n|---|---|---|---|---|---|\n")
	for _, s := range r.skew {
		var p99 []time.Duration
		for _, x := range s.runs {
			p99 = append(p99, x.p99)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %s |\n", bench.Commas(float64(s.size)), percent(bench.Median(hitRates(s.runs))), bench.Commas(bench.Median(rates(s.runs))),
			bench.Round(bench.Median(p99)), s.scansPerMiss, mib(s.rss))
	}
	b.WriteString("\nA miss's lookup on the large database (`EXPLAIN (ANALYZE, BUFFERS)`):\n\n```\n")
	for _, l := range r.plan {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n")
	return b.String()
}

func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = bench.Round(d)
	}
	return strings.Join(s, ", ")
}

// parseSizes reads a comma-separated list of positive numbers.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("cache size %q: want a positive number", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	return sizes, nil
}
