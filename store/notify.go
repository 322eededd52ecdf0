package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// ChangesChannel is the notification channel on which the triggers of
// migrations 00003 and 00005 announce changes to credentials and keys.
const ChangesChannel = "authapi_credentials"

// Change is a committed change to credentials: one that may take away what
// a credential grants, or that changes a user's key listing. Exactly one of
// All, Digest, UserID and KeysOf is set, except that KeysOf comes with
// Digest when the key's owner is known.
type Change struct {
	All    bool      // anything may have changed (a TRUNCATE, or a payload not understood)
	Digest []byte    // the API key with this digest was revoked, deleted or changed
	UserID uuid.UUID // the user was deleted or changed, and with it their keys
	KeysOf uuid.UUID // the listing of this user's keys changed (a key added, changed or used)
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
	// Changed reports one change, normally about a millisecond after its
	// commit; while the connection is silently lost, not until the pings
	// notice (Listening(false), within seconds).
	Changed(Change)
}

// The notification connection is pinged, to notice one silently dropped,
// and reconnected at most a second apart, so that a new primary is heard
// from within a second of its promotion.
const (
	listenPingEvery    = time.Second
	listenPingTimeout  = 2 * time.Second
	listenMinReconnect = 100 * time.Millisecond
	listenMaxReconnect = time.Second
	// syncTimeout bounds a Sync marker's round trip.
	syncTimeout = time.Second
)

// Changes hears the changes the triggers announce and reports them to a
// ChangeHandler (Run), and can tell when every change committed before a
// moment has been reported (Sync).
type Changes struct {
	db      *DB
	url     string
	h       ChangeHandler
	log     *slog.Logger
	channel string // this listener's own channel, for Sync's markers

	mu        sync.Mutex
	listening bool
	seq       uint64
	sent      *syncRound // the round whose marker is on its way, if any
	next      *syncRound // who waits for the round after it, if anyone
}

// syncRound is one marker sent for Sync, and who waits for it.
type syncRound struct {
	seq  uint64
	done chan struct{}
	err  error
}

// Sync's errors.
var (
	ErrNotListening = errors.New("store: change notifications are not being heard")
	errSyncTimeout  = errors.New("store: a sync marker did not come back in time")
)

// Changes returns a listener that will report to h, once Run, the changes
// announced on ChangesChannel through a session connection to url. url must
// reach this database directly or through a pooler in session mode: LISTEN
// needs a session of its own, which a pooler in transaction mode does not
// give.
func (s *DB) Changes(url string, h ChangeHandler, log *slog.Logger) *Changes {
	var b [8]byte
	rand.Read(b[:])
	return &Changes{db: s, url: url, h: h, log: log, channel: "authapi_sync_" + hex.EncodeToString(b[:])}
}

// Sync returns nil once every change committed before it was called has
// been reported to the handler, or an error (ErrNotListening, a timeout,
// ctx's) when it cannot tell. It sends a marker through the database on
// this listener's own channel: PostgreSQL delivers notifications in commit
// order, so when the marker comes back, whatever committed before it has
// come too. Concurrent calls share markers: one is on its way at a time,
// and every call made meanwhile waits for the next.
func (c *Changes) Sync(ctx context.Context) error {
	c.mu.Lock()
	if !c.listening {
		c.mu.Unlock()
		return ErrNotListening
	}
	if c.next == nil {
		c.next = &syncRound{done: make(chan struct{})}
	}
	r := c.next
	if c.sent == nil {
		c.sendLocked()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendLocked sends the next round's marker.
func (c *Changes) sendLocked() {
	r := c.next
	c.next, c.sent = nil, r
	c.seq++
	r.seq = c.seq
	go func() {
		// A round that takes longer fails its callers, who then read the
		// database; the bound keeps an outage from doubling their wait.
		ctx, cancel := context.WithTimeout(context.Background(), min(c.db.timeout, syncTimeout))
		defer cancel()
		// One statement, and no wait for a disk flush at its commit: the
		// marker is worth nothing after a crash.
		_, err := c.db.db.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`,
			c.channel, strconv.FormatUint(r.seq, 10))
		if err == nil {
			select {
			case <-r.done:
				return
			case <-ctx.Done():
				err = errSyncTimeout
			}
		}
		c.finish(r.seq, err)
	}()
}

// finish ends the round seq, if it is still on its way, and sends the
// next one if anyone waits.
func (c *Changes) finish(seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent == nil || c.sent.seq != seq {
		return
	}
	c.sent.err = err
	close(c.sent.done)
	c.sent = nil
	if c.next == nil {
		return
	}
	switch {
	case err != nil:
		// Whatever held this round up would hold the next: its callers
		// read the database now rather than wait a second round.
		c.next.err = err
	case !c.listening:
		c.next.err = ErrNotListening
	default:
		c.sendLocked()
		return
	}
	close(c.next.done)
	c.next = nil
}

// setListening records whether changes are heard; rounds on their way
// when they stop are failed, since their markers may never come.
func (c *Changes) setListening(ok bool) {
	c.mu.Lock()
	c.listening = ok
	sent := c.sent
	c.mu.Unlock()
	if !ok && sent != nil {
		c.finish(sent.seq, ErrNotListening)
	}
}

// Run keeps the session connection LISTENing and reports to the handler
// until ctx ends. Connection losses are retried for ever, with the
// handler told through Listening.
func (c *Changes) Run(ctx context.Context) {
	h, log := c.h, c.log
	var (
		mu         sync.Mutex
		connected  bool // lib/pq's connection is up
		subscribed bool // the first LISTENs succeeded (lib/pq repeats them on reconnection)
		healthy    = true
		stopped    bool // Run has returned
		reported   bool
	)
	report := func() { // with mu held
		ok := connected && subscribed && healthy && !stopped
		if ok != reported {
			reported = ok
			c.setListening(ok)
			h.Listening(ok)
		}
	}
	l := pq.NewDialListener(newListenDialer(), c.url, listenMinReconnect, listenMaxReconnect, func(ev pq.ListenerEventType, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch ev {
		case pq.ListenerEventConnected, pq.ListenerEventReconnected:
			// A connection that has just LISTENed answers: pings that
			// failed while there was none say nothing of it.
			connected, healthy = true, true
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
	defer func() {
		// Nothing is heard from now on: say so, so that the cache is not
		// trusted, and let lib/pq's goroutine deliver what it still holds.
		mu.Lock()
		stopped = true
		report()
		mu.Unlock()
		l.Close()
		go func() {
			for range l.Notify {
			}
		}()
	}()
	go func() {
		// Blocks until connected; fails only for good (a closed listener,
		// or PostgreSQL refusing LISTEN).
		for _, channel := range []string{ChangesChannel, c.channel} {
			if err := l.Listen(channel); err != nil {
				if ctx.Err() == nil {
					log.Error("credential change notifications: LISTEN failed; the credential cache stays bypassed", "error", err)
				}
				return
			}
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
			switch {
			case n == nil: // a reconnection, which the callback handled
			case n.Channel == c.channel:
				// Every change committed before the marker was reported.
				if seq, err := strconv.ParseUint(n.Extra, 10, 64); err == nil {
					c.finish(seq, nil)
				}
			default:
				h.Changed(parseChange(n.Extra))
			}
		}
	}
}

// parseChange reads a payload of the triggers (migrations 00003 and 00005);
// anything else means everything may have changed.
func parseChange(payload string) Change {
	if s, ok := strings.CutPrefix(payload, "key:"); ok { // key:<hex digest>:<owner>
		digest, owner, _ := strings.Cut(s, ":")
		d, err := hex.DecodeString(digest)
		id, ierr := uuid.Parse(owner)
		if err == nil && ierr == nil {
			return Change{Digest: d, KeysOf: id}
		}
	}
	if s, ok := strings.CutPrefix(payload, "keys:"); ok {
		if id, err := uuid.Parse(s); err == nil {
			return Change{KeysOf: id}
		}
	}
	if s, ok := strings.CutPrefix(payload, "user:"); ok {
		if id, err := uuid.Parse(s); err == nil {
			return Change{UserID: id}
		}
	}
	return Change{All: true}
}
