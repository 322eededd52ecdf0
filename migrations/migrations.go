// Package migrations holds the database schema as numbered SQL files, in
// goose's format, embedded so that the binary carries its own schema.
package migrations

import "embed"

// FS holds the *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
