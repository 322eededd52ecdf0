package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
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
func parseConfig(name string, args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	env := make(map[string]string) // flag name -> variable

	str := func(p *string, flagName, def, usage string) {
		fs.StringVar(p, flagName, def, usage)
		env[flagName] = envName(flagName)
	}
	dur := func(p *time.Duration, flagName string, def time.Duration, usage string) {
		fs.DurationVar(p, flagName, def, usage)
		env[flagName] = envName(flagName)
	}
	num := func(p *int, flagName string, def int, usage string) {
		fs.IntVar(p, flagName, def, usage)
		env[flagName] = envName(flagName)
	}
	unum := func(p *uint, flagName string, def uint, usage string) {
		fs.UintVar(p, flagName, def, usage)
		env[flagName] = envName(flagName)
	}
	val := func(v flag.Value, flagName, usage string) {
		fs.Var(v, flagName, usage)
		env[flagName] = envName(flagName)
	}

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
	num(&c.MaxActiveKeys, "max-active-keys", 100, "active API keys per user (0: no cap)")
	dur(&c.KeyMaxLifetime, "key-max-lifetime", 365*24*time.Hour, "how far ahead an API key's expiry may be (0: no bound)")
	dur(&c.KeyDefaultLife, "key-default-lifetime", 0, "lifetime of an API key created without an expiry (0: such keys never expire)")
	fs.Int64Var(&c.BodyLimit, "max-body-bytes", 64<<10, "largest request body")
	env["max-body-bytes"] = envName("max-body-bytes")
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
	env["migrate"] = envName("migrate")
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

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [migrate] [flags]\n\nauthapi serves the authentication API. With `migrate`, it applies the\ndatabase migrations and exits. Every flag can also be set by the\nenvironment variable named after it; a flag wins over the variable.\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	for f := range env { // name each variable in the usage
		fl := fs.Lookup(f)
		fl.Usage += " ($" + env[f] + ")"
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for f, variable := range env {
		if v := getenv(variable); v != "" && !given[f] {
			if err := fs.Set(f, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", variable, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, c.validate()
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
	check((c.LoginMaxFailures == 0 && c.LoginMaxFailuresPerAddress == 0) || c.LoginWindow > 0, "login window must be positive")
	check(c.RegisterMaxPerAddress >= 0, "registration limit per address must not be negative")
	check(c.MaxActiveKeys >= 0, "active key cap must not be negative")
	check(c.KeyMaxLifetime >= 0 && c.KeyDefaultLife >= 0, "key lifetimes must not be negative")
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
