package server

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"authapi/gen"
	"authapi/store"
)

// defaultPageSize is a page's size when the request names none (the spec's
// default of limit).
const defaultPageSize = 100

// page reads a listing's limit and cursor. A cursor that is not one of
// ours is a 422 naming it.
func page(limit *gen.Limit, cursor *gen.Cursor) (store.Page, error) {
	p := store.Page{Limit: defaultPageSize}
	if limit != nil {
		p.Limit = int(*limit)
	}
	if cursor != nil {
		after, err := decodeCursor(*cursor)
		if err != nil {
			return p, validationProblem([]gen.FieldError{{Field: "cursor", Message: "is not a cursor of this listing"}})
		}
		p.After = after
	}
	return p, nil
}

// A cursor is the position of the last item of a page: its creation time
// in microseconds since 1970 and its ID, in base64url. Opaque to clients,
// and harmless to forge: a listing is always the caller's own.
func encodeCursor(at time.Time, id uuid.UUID) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMicro()))
	copy(b[8:], id[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (*store.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 24 {
		return nil, fmt.Errorf("server: malformed cursor")
	}
	return &store.Position{CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(), ID: uuid.UUID(b[8:])}, nil
}

// onePage cuts items, read with one more than the page holds when more
// remain, to the page, and returns the Link header naming the next page of
// the listing at path, or "" on the last. pos is an item's position.
func onePage[T any](items []T, pg store.Page, path string, pos func(T) (time.Time, uuid.UUID)) ([]T, string) {
	if len(items) <= pg.Limit {
		return items, ""
	}
	items = items[:pg.Limit]
	at, id := pos(items[len(items)-1])
	q := url.Values{"limit": {strconv.Itoa(pg.Limit)}, "cursor": {encodeCursor(at, id)}}
	return items, "<" + path + "?" + q.Encode() + `>; rel="next"`
}
