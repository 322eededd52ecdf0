package main

import (
	"context"
	"log/slog"
	"time"

	"authapi/server"
	"authapi/store"
)

// keyUseInterval is how often the API keys' last uses are written, so that
// a use shows within five seconds.
const keyUseInterval = 2 * time.Second

// background runs the periodic work until ctx ends: writing the API keys'
// last uses, the log's summaries of the requests it left out, and deleting
// what has left its retention (login failures and registration attempts
// outside their throttling windows, retired keys, old security events,
// ended tokens). When ctx ends it logs the summaries and writes the last
// uses once more.
func background(ctx context.Context, srv *server.Server, db *store.DB, cfg *config, log *slog.Logger) {
	uses := time.NewTicker(keyUseInterval)
	defer uses.Stop()
	logs := time.NewTicker(server.LogSummaryInterval)
	defer logs.Stop()
	cleanups := time.NewTicker(time.Minute)
	defer cleanups.Stop()
	for {
		select {
		case <-ctx.Done():
			srv.FlushLogSummaries()
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.KeyUses().Write(fctx); err != nil {
				log.Warn("write API key last use", "error", err)
			}
			return
		case <-uses.C:
			if err := srv.KeyUses().Write(ctx); err != nil {
				log.Warn("write API key last use", "error", err)
			}
		case <-logs.C:
			srv.FlushLogSummaries()
		case <-cleanups.C:
			cleanUp(ctx, db, cfg, log)
		}
	}
}

// cleanUp deletes the rows that have left their retention.
func cleanUp(ctx context.Context, db *store.DB, cfg *config, log *slog.Logger) {
	forget(ctx, log, "login failures", db.ForgetLoginFailures, cfg.LoginWindow)
	forget(ctx, log, "registration attempts", db.ForgetRegistrationAttempts, server.RegisterWindow)
	if cfg.RevokedKeyRetention > 0 {
		forget(ctx, log, "retired API keys", db.DeleteRetiredKeys, cfg.RevokedKeyRetention)
	}
	if cfg.EventRetention > 0 {
		forget(ctx, log, "security events", db.DeleteOldEvents, cfg.EventRetention)
	}
	forget(ctx, log, "ended tokens", func(ctx context.Context, _ time.Duration) (int64, error) {
		return db.ForgetEndedTokens(ctx)
	}, 0)
}

// forget runs one of the store's Forget methods and logs what it did.
func forget(ctx context.Context, log *slog.Logger, what string, f func(context.Context, time.Duration) (int64, error), window time.Duration) {
	if n, err := f(ctx, window); err != nil {
		log.Warn("forget old "+what, "error", err)
	} else if n > 0 {
		log.Debug("forgot old "+what, "rows", n)
	}
}
