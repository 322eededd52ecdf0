package store

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// ChangesChannel is the notification channel on which the triggers of
// migration 00003 announce changes to credentials.
const ChangesChannel = "authapi_credentials"

// Change is a committed change that may take away what a credential grants.
// Exactly one of its fields is set.
type Change struct {
	All    bool      // anything may have changed (a TRUNCATE, or a payload not understood)
	Digest []byte    // the API key with this digest was revoked, deleted or changed
	UserID uuid.UUID // the user was deleted or changed, and with it their keys
}

// ChangeHandler is told of changes, and of whether it can rely on being
// told.
type ChangeHandler interface {
	// Listening(true) means every change committed from now on will be
	// delivered; Listening(false) means changes may be missed until the
	// next Listening(true). Between the two, any change may have been
	// missed. It is called from one goroutine at a time and should return
	// quickly.
	Listening(ok bool)
	// Changed reports one change, at most milliseconds after its commit.
	Changed(Change)
}

// How the notification connection is watched: lib/pq notices a closed
// connection at once, but a silently dropped one only when a query on it
// fails, so it is pinged.
const (
	listenPingEvery    = time.Second
	listenPingTimeout  = 2 * time.Second
	listenMinReconnect = 100 * time.Millisecond
	listenMaxReconnect = 5 * time.Second
)

// ListenForChanges keeps a session connection to url LISTENing on
// ChangesChannel and reports to h until ctx ends. url must reach PostgreSQL
// directly or through a pooler in session mode: LISTEN needs a session of
// its own, which a pooler in transaction mode does not give. Connection
// losses are retried for ever, with h told through Listening.
func ListenForChanges(ctx context.Context, url string, h ChangeHandler, log *slog.Logger) {
	var (
		mu         sync.Mutex
		connected  bool // lib/pq's connection is up
		subscribed bool // the first LISTEN succeeded (lib/pq repeats it on reconnection)
		healthy    = true
		reported   bool
	)
	report := func() { // with mu held
		ok := connected && subscribed && healthy
		if ok != reported {
			reported = ok
			h.Listening(ok)
		}
	}
	l := pq.NewListener(url, listenMinReconnect, listenMaxReconnect, func(ev pq.ListenerEventType, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch ev {
		case pq.ListenerEventConnected, pq.ListenerEventReconnected:
			connected = true
			if ev == pq.ListenerEventReconnected {
				log.Info("credential change notifications: reconnected")
			}
		case pq.ListenerEventDisconnected:
			connected = false
			log.Warn("credential change notifications: connection lost; bypassing the credential cache until it is back", "error", err)
		case pq.ListenerEventConnectionAttemptFailed:
			log.Warn("credential change notifications: cannot connect", "error", err)
		}
		report()
	})
	defer l.Close()
	go func() {
		// Blocks until connected; fails only for good (a closed listener,
		// or PostgreSQL refusing LISTEN).
		if err := l.Listen(ChangesChannel); err != nil {
			if ctx.Err() == nil {
				log.Error("credential change notifications: LISTEN failed; the credential cache stays bypassed", "error", err)
			}
			return
		}
		mu.Lock()
		subscribed = true
		report()
		mu.Unlock()
	}()

	// Pings run beside the notifications, so that a slow answer never
	// holds an invalidation back.
	go func() {
		tick := time.NewTicker(listenPingEvery)
		defer tick.Stop()
		var pinging chan error // the ping in flight, if any
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if pinging == nil {
				pinging = make(chan error, 1)
				go func(c chan error) { c <- l.Ping() }(pinging)
			}
			ok := false
			select {
			case err := <-pinging:
				pinging, ok = nil, err == nil
			case <-time.After(listenPingTimeout): // still waiting: look again at the next tick
			case <-ctx.Done():
				return
			}
			mu.Lock()
			if healthy != ok {
				healthy = ok
				if !ok && connected {
					log.Warn("credential change notifications: the connection does not answer; bypassing the credential cache")
				}
				report()
			}
			mu.Unlock()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-l.Notify:
			if !ok {
				return
			}
			if n != nil { // nil marks a reconnection, which the callback handled
				h.Changed(parseChange(n.Extra))
			}
		}
	}
}

// parseChange reads a payload of the triggers; anything else means
// everything may have changed.
func parseChange(payload string) Change {
	if s, ok := strings.CutPrefix(payload, "key:"); ok {
		if d, err := hex.DecodeString(s); err == nil {
			return Change{Digest: d}
		}
	}
	if s, ok := strings.CutPrefix(payload, "user:"); ok {
		if id, err := uuid.Parse(s); err == nil {
			return Change{UserID: id}
		}
	}
	return Change{All: true}
}
