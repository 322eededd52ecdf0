package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"authapi/server"
	"authapi/store"
)

// config is the binary's configuration: every setting is a flag, and an
// environment variable for when the flag is not given.
type config struct {
	Addr             string
	DatabaseURL      string
	DatabaseListen   string
	DBPrepare        string
	DataDir          string
	JWTSecret        string
	JWTPrevious      list
	JWTIssuer        string
	TokenTTL         time.Duration
	APIKeyPepper     string
	LoginMaxFailures int
	LoginWindow      time.Duration
	MaxActiveKeys    int
	KeyMaxLifetime   time.Duration
	KeyDefaultLife   time.Duration
	BodyLimit        int64
	TrustedProxies   prefixes
	DBMaxConns       int
	DBTimeout        time.Duration
	DBConnectTimeout time.Duration
	Migrate          bool
	HashWorkers      int
	HashQueue        int
	HashWait         time.Duration
	Argon2Memory     uint
	Argon2Time       uint
	Argon2Threads    uint
	ShutdownTimeout  time.Duration
	CacheSize        int
	CacheTTL         time.Duration
	LogLevel         string
	LogFormat        string
	AccessLog        string

	LoginMaxFailuresPerAddress int
	RegisterMaxPerAddress      int
	RateLimitPerAddress        int
	ConcurrencyPerAddress      int
	ThrottleDelay              time.Duration
	PasswordChecksPerAddress   int
	LoginMaxPerAddress         int
	AuthFailuresPerAddress     int
	KeyWritesPerUser           int
	MetricsAddr                string
	RevokedKeyRetention        time.Duration
	ReauthMaxAge               time.Duration
	EventRetention             time.Duration
	HeaderLimit                int
	CORSOrigins                list
	ReadHeaderTimeout          time.Duration
	ReadTimeout                time.Duration
	WriteTimeout               time.Duration
	IdleTimeout                time.Duration
}

// envPrefix starts the name of every setting's environment variable.
const envPrefix = "AUTH_"

// parseConfig reads args (without the program name), then the environment
// for every flag not given. It returns flag.ErrHelp after printing the usage
// for -h.
//
// The merge is ours rather than a library's: peterbourgon/ff, the one that
// fits, reads only the process environment, while run takes getenv so that
// tests drive the binary in-process, in parallel, each with its own
// environment; and it stops at the first bad variable.
func parseConfig(name string, args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	// Every flag is also set by its variable (envName), so a setting is one
	// line: the flag.
	str, dur, num, unum, val := fs.StringVar, fs.DurationVar, fs.IntVar, fs.UintVar, fs.Var

	str(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	str(&c.DatabaseURL, "database-url", "", "PostgreSQL URL; empty starts a private PostgreSQL in the data folder")
	str(&c.DatabaseListen, "database-listen-url", "", "PostgreSQL URL for LISTEN, a session connection (not through a pooler in transaction mode); empty: the database URL")
	str(&c.DataDir, "data-dir", "./var", "folder for the private PostgreSQL and the secrets it generates")
	str(&c.JWTSecret, "jwt-secret", "", "HS256 secret, at least 32 bytes; generated in the data folder when empty, required with a database URL")
	val(&c.JWTPrevious, "jwt-previous-secrets", "comma-separated secrets that still verify tokens but never sign (for rotation)")
	str(&c.JWTIssuer, "jwt-issuer", "authapi", "iss and aud of the tokens")
	dur(&c.TokenTTL, "token-ttl", time.Hour, "lifetime of an access token")
	str(&c.APIKeyPepper, "api-key-pepper", "", "secret keying the API key digests; generated in the data folder when empty (derived from the JWT secret with a database URL)")
	num(&c.LoginMaxFailures, "login-max-failures", 10, "failed logins per username and client address within the window before 429 (0: off)")
	num(&c.LoginMaxFailuresPerAddress, "login-max-failures-per-address", 100, "failed logins per client address over all usernames within the window before 429 (0: off)")
	dur(&c.LoginWindow, "login-window", 15*time.Minute, "window of the login failure limits")
	num(&c.RegisterMaxPerAddress, "register-max-per-address", 50, "registration attempts per client address per hour before 429 (0: off)")
	num(&c.RateLimitPerAddress, "rate-limit-per-address", 1000, "requests per second per client address, in bursts of up to a second's worth, before 429; health checks exempt (0: off)")
	num(&c.ConcurrencyPerAddress, "concurrency-per-address", 16, "requests of one client address (the TCP peer; trusted proxies exempt) served at once; the others wait, parked, for at most the read-header timeout, then 429 (0: off; unset, off when -rate-limit-per-address is 0)")
	num(&c.PasswordChecksPerAddress, "password-checks-per-address", 1, "password checks (login, registration, password change, account deletion) of one client address run at once per instance, so that one address holds at most that many hashing workers and database connections; the others wait their turn for up to 10s, then 429 (0: no bound; unset, when -rate-limit-per-address or -login-max-per-address is 0: none, or the hash workers while a login failure limit is on)")
	dur(&c.ThrottleDelay, "throttle-delay", 250*time.Millisecond, "how long a request refused with 429 waits before its answer, keeping its turn among its address's concurrent requests, so that a flood gets few answers a second (0: answer at once; unset, 0 when -rate-limit-per-address is 0)")
	num(&c.LoginMaxPerAddress, "login-max-per-address", 600, "login attempts, successes too, per client address within the login window before 429 (0: off)")
	num(&c.AuthFailuresPerAddress, "auth-failures-per-address", 100, "failed API key and JWT checks per client address per minute; beyond it, credentials not already verified get 429 without a lookup (0: off)")
	num(&c.KeyWritesPerUser, "key-writes-per-user", 500, "API key creations, rotations and revocations per user per hour before 429 (0: off)")
	num(&c.MaxActiveKeys, "max-active-keys", 100, "active API keys per user (0: no cap)")
	dur(&c.KeyMaxLifetime, "key-max-lifetime", 365*24*time.Hour, "how far ahead an API key's expiry may be (0: no bound)")
	dur(&c.KeyDefaultLife, "key-default-lifetime", 0, "lifetime of an API key created without an expiry (0: such keys never expire)")
	dur(&c.ReauthMaxAge, "reauth-max-age", 5*time.Minute, "how recent a login must be to delete the account (older tokens get 401 insufficient_user_authentication)")
	dur(&c.EventRetention, "event-retention", 90*24*time.Hour, "how long security events are kept (0: forever)")
	dur(&c.RevokedKeyRetention, "revoked-key-retention", 30*24*time.Hour, "how long revoked and expired API keys stay listed before they are deleted (0: forever)")
	fs.Int64Var(&c.BodyLimit, "max-body-bytes", 64<<10, "largest request body")
	num(&c.HeaderLimit, "max-header-bytes", 8<<10, "largest request line and headers (431 beyond)")
	val(&c.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	val(&c.CORSOrigins, "cors-origins", "comma-separated browser origins (https://host[:port]) allowed to call the API, or * for any; empty: CORS off")
	dur(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "longest time to read a request's headers")
	dur(&c.ReadTimeout, "read-timeout", 30*time.Second, "longest time to read a whole request")
	dur(&c.WriteTimeout, "write-timeout", 30*time.Second, "longest time from the end of the request headers to the end of the response")
	dur(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	num(&c.DBMaxConns, "db-max-conns", 20, "database connections in the pool")
	dur(&c.DBTimeout, "db-timeout", 5*time.Second, "bound on each database statement, including the wait for a connection")
	str(&c.DBPrepare, "db-prepare", "auto", "prepare the reads of authenticated requests once per connection: on, off, or auto (on unless -database-listen-url is set, which says the database URL may be a pooler in transaction mode, where most connections would lack them)")
	dur(&c.DBConnectTimeout, "db-connect-timeout", 60*time.Second, "how long to keep retrying the database at start-up (0: forever)")
	fs.BoolVar(&c.Migrate, "migrate", true, "apply pending migrations at start-up")
	num(&c.HashWorkers, "hash-workers", 0, "password hashes at once (0: one per CPU)")
	num(&c.HashQueue, "hash-queue", 1024, "requests that may wait for a hash worker before 503")
	dur(&c.HashWait, "hash-wait", 10*time.Second, "longest wait for a hash worker before 503")
	unum(&c.Argon2Memory, "argon2-memory-kib", 19456, "argon2id memory in KiB (OWASP minimum: 19456)")
	unum(&c.Argon2Time, "argon2-time", 2, "argon2id passes (OWASP minimum: 2)")
	unum(&c.Argon2Threads, "argon2-threads", 1, "argon2id lanes")
	dur(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to drain in-flight requests on SIGTERM or SIGINT")
	num(&c.CacheSize, "credential-cache-size", 25000, "API keys, and separately JWT users, whose verification is cached, invalidated through LISTEN/NOTIFY (0: no cache)")
	dur(&c.CacheTTL, "credential-cache-ttl", time.Minute, "longest time a verification stays cached")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "json", "json or text")
	str(&c.AccessLog, "access-log", "all", "all: a line per request; events: leave out successful reads without an authentication event")
	str(&c.MetricsAddr, "metrics-addr", "", "address of a listener of its own for /metrics, which then leaves the API's port (empty: /metrics on the API's port)")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [migrate] [flags]\n\nauthapi serves the authentication API. With `migrate`, it applies the\ndatabase migrations and exits. Every flag can also be set by the\nenvironment variable named after it; a flag wins over the variable.\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " ($" + envName(f.Name) + ")" })
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		variable := envName(f.Name)
		if v := getenv(variable); v != "" && !given[f.Name] {
			given[f.Name] = true
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", variable, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.followPerAddressLimits(given)
	return c, c.validate()
}

// followPerAddressLimits turns off, unless they were set, the bounds that
// share the server among addresses when the per-address limits named for
// that purpose are 0: setting those to 0 says one address may send as
// much as it likes (a load generator, a test suite sent from one host),
// and the bounds without a name of their own must not then refuse it,
// park it or hold its answers.
func (c *config) followPerAddressLimits(given map[string]bool) {
	if c.RateLimitPerAddress == 0 {
		if !given["concurrency-per-address"] {
			c.ConcurrencyPerAddress = 0
		}
		if !given["throttle-delay"] {
			c.ThrottleDelay = 0
		}
	}
	if (c.RateLimitPerAddress == 0 || c.LoginMaxPerAddress == 0) && !given["password-checks-per-address"] {
		c.PasswordChecksPerAddress = 0
		// While a login throttle is on, its transactions take a lock per
		// address in PostgreSQL, waited for at most 500 ms: the bound
		// keeps queueing one address's attempts in memory instead, as
		// many at once as there are hashing workers.
		if c.LoginMaxFailures > 0 || c.LoginMaxFailuresPerAddress > 0 {
			c.PasswordChecksPerAddress = c.hashWorkers()
		}
	}
}

// hashWorkers is how many password hashes run at once.
func (c *config) hashWorkers() int {
	if c.HashWorkers > 0 {
		return c.HashWorkers
	}
	return runtime.GOMAXPROCS(0)
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.TokenTTL > 0, "token TTL must be positive")
	check(c.LoginMaxFailures >= 0, "login failure limit must not be negative")
	check(c.LoginMaxFailuresPerAddress >= 0, "login failure limit per address must not be negative")
	check((c.LoginMaxFailures == 0 && c.LoginMaxFailuresPerAddress == 0 && c.LoginMaxPerAddress == 0) || c.LoginWindow > 0, "login window must be positive")
	check(c.RegisterMaxPerAddress >= 0, "registration limit per address must not be negative")
	check(c.RateLimitPerAddress >= 0 && c.ConcurrencyPerAddress >= 0 && c.LoginMaxPerAddress >= 0 && c.AuthFailuresPerAddress >= 0 && c.KeyWritesPerUser >= 0 && c.ThrottleDelay >= 0 && c.PasswordChecksPerAddress >= 0, "per-client limits must not be negative")
	check(c.MaxActiveKeys >= 0, "active key cap must not be negative")
	check(c.KeyMaxLifetime >= 0 && c.KeyDefaultLife >= 0 && c.RevokedKeyRetention >= 0 && c.EventRetention >= 0, "key lifetimes and retentions must not be negative")
	check(c.ReauthMaxAge > 0, "re-authentication age must be positive")
	check(c.KeyMaxLifetime == 0 || c.KeyDefaultLife <= c.KeyMaxLifetime, "the default key lifetime must not exceed the maximum")
	check(c.BodyLimit > 0, "body limit must be positive")
	check(c.HeaderLimit >= 1<<10, "header limit must be at least 1024 bytes")
	check(c.ReadHeaderTimeout > 0 && c.ReadTimeout > 0 && c.WriteTimeout > 0 && c.IdleTimeout > 0, "server timeouts must be positive")
	for _, o := range c.CORSOrigins {
		_, err := server.NormalizeOrigin(o)
		check(err == nil, "AUTH_CORS_ORIGINS: %v", err)
		check(o != "*" || len(c.CORSOrigins) == 1, "AUTH_CORS_ORIGINS: * allows every origin and cannot be combined with others")
	}
	check(c.DBMaxConns > 0, "database pool must have at least one connection")
	check(c.DBTimeout > 0, "database timeout must be positive")
	check(c.HashWorkers >= 0 && c.HashQueue >= 0 && c.HashWait > 0, "hash pool settings must not be negative")
	check(c.Argon2Threads >= 1 && c.Argon2Threads <= 255, "argon2id threads must be between 1 and 255")
	check(c.DBPrepare == "auto" || c.DBPrepare == "on" || c.DBPrepare == "off", "db-prepare must be auto, on or off")
	check(c.CacheSize >= 0 && c.CacheTTL > 0, "credential cache size must not be negative, and its TTL must be positive")
	check(c.LogFormat == "json" || c.LogFormat == "text", "log format must be json or text")
	check(c.AccessLog == "all" || c.AccessLog == "events", "access log must be all or events")
	check(c.DataDir != "" || c.DatabaseURL != "", "a data folder is needed without a database URL")
	for _, u := range []struct{ name, url string }{{"AUTH_DATABASE_URL", c.DatabaseURL}, {"AUTH_DATABASE_LISTEN_URL", c.DatabaseListen}} {
		if u.url != "" {
			err := store.CheckURL(u.url)
			check(err == nil, "%s: %v", u.name, err)
		}
	}
	return errors.Join(errs...)
}

// list is a comma-separated flag.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// prefixes is a comma-separated flag of CIDRs (or single addresses).
type prefixes []netip.Prefix

func (p *prefixes) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixes) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return err
			}
			*p = append(*p, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		x, err := netip.ParsePrefix(v)
		if err != nil {
			return err
		}
		*p = append(*p, x.Masked())
	}
	return nil
}
