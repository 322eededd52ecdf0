package server

// event is the "event" attribute of a log line: what happened to a
// request, for the log and the login metrics. Alerts, the tests and the
// fault suites look for these strings: they must not change.
type event string

// The log's events.
const (
	eventRegistered         event = "registered"
	eventRegisterThrottled  event = "register_throttled"
	eventLoginSucceeded     event = "login_succeeded"
	eventLoginFailed        event = "login_failed"
	eventLoginThrottled     event = "login_throttled"
	eventLoggedOut          event = "logged_out"
	eventPasswordChanged    event = "password_changed"
	eventProfileUpdated     event = "profile_updated"
	eventAccountDeleted     event = "account_deleted"
	eventAuthFailed         event = "auth_failed"
	eventAuthThrottled      event = "auth_throttled"
	eventKeyWritesThrottled event = "key_writes_throttled"
	eventRateLimited        event = "rate_limited"
	eventRequestsNotLogged  event = "requests_not_logged"
	eventRefusalReplayed    event = "refusal_replayed"
)

// metricName is the name of one of the server's Prometheus metrics.
// Dashboards and the tests read them: they must not change.
type metricName string

// The server's metrics (metrics.go).
const (
	metricRequestDuration  metricName = "authapi_http_request_duration_seconds"
	metricLogins           metricName = "authapi_logins_total"
	metricKeyVerifications metricName = "authapi_api_key_verifications_total"
	metricKeyListings      metricName = "authapi_key_listings_total"
	metricHashRunning      metricName = "authapi_password_hash_running"
	metricHashQueueLength  metricName = "authapi_password_hash_queue_length"
	metricPoolOpen         metricName = "authapi_db_pool_open_connections"
	metricPoolInUse        metricName = "authapi_db_pool_in_use_connections"
	metricPoolIdle         metricName = "authapi_db_pool_idle_connections"
	metricPoolMaxOpen      metricName = "authapi_db_pool_max_open_connections"
	metricPoolWaits        metricName = "authapi_db_pool_waits_total"
	metricPoolWaitSeconds  metricName = "authapi_db_pool_wait_seconds_total"
	metricCacheListening   metricName = "authapi_credential_cache_listening"
	metricCacheAPIKeys     metricName = "authapi_credential_cache_api_keys"
	metricCacheUsers       metricName = "authapi_credential_cache_users"
	metricCacheKeyListings metricName = "authapi_credential_cache_key_listings"
)
