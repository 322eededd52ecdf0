package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"authapi/server"
)

// listPages follows a listing's next links from path and returns the IDs
// it yielded, page by page.
func (e *env) listPages(u *user, path string) [][]string {
	e.t.Helper()
	var pages [][]string
	for path != "" {
		r := e.do(true, "GET", path, "", "Authorization", "Bearer "+u.Token)
		var keys []struct{ ID string }
		if r.Status != 200 || json.Unmarshal(r.Body, &keys) != nil {
			e.t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		pages = append(pages, ids)
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			target, ok := strings.CutSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			if !ok || !strings.HasPrefix(target, "/v1/auth/api-keys?") {
				e.t.Fatalf("Link = %q, want <…>; rel=\"next\" to the listing", link)
			}
			path = target
		}
		if len(pages) > 1000 {
			e.t.Fatal("the next links never end")
		}
	}
	return pages
}

func TestKeyListingPages(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("pager")
	var created []string // oldest first
	for i := range 7 {
		created = append(created, e.MustCreateKey(u, fmt.Sprint("k", i)).ID.String())
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	pages := e.listPages(u, "/v1/auth/api-keys?limit=3")
	if len(pages) != 3 || len(pages[0]) != 3 || len(pages[1]) != 3 || len(pages[2]) != 1 {
		t.Fatalf("pages of 3 over 7 keys = %v, want 3, 3, 1", pages)
	}
	if all := slices.Concat(pages...); !slices.Equal(all, newestFirst) {
		t.Fatalf("the pages yield %v, want every key once, newest first: %v", all, newestFirst)
	}
	if pages := e.listPages(u, "/v1/auth/api-keys?limit=7"); len(pages) != 1 {
		t.Fatalf("a page that holds everything = %v, want no next link", pages)
	}

	// Keys created while a client pages through come before its cursor:
	// the pages after the first still yield each older key once.
	r := e.do(true, "GET", "/v1/auth/api-keys?limit=2", "", "Authorization", "Bearer "+u.Token)
	next := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Link"), "<"), `>; rel="next"`)
	for i := range 3 {
		e.MustCreateKey(u, fmt.Sprint("new", i))
	}
	rest := slices.Concat(e.listPages(u, next)...)
	if !slices.Equal(rest, newestFirst[2:]) {
		t.Fatalf("after creating keys mid-listing, the rest = %v, want %v", rest, newestFirst[2:])
	}

	for _, tc := range []struct{ query, field string }{
		{"cursor=!!!", "cursor"},
		{"cursor=abc", "cursor"},
		{"cursor=", "cursor"},
		{"limit=0", "limit"},
		{"limit=101", "limit"},
		{"limit=x", "limit"},
		{"limit=2&limit=3", "limit"},
		{"cursor=" + strings.Repeat("A", 201), "cursor"},
	} {
		r := e.do(false, "GET", "/v1/auth/api-keys?"+tc.query, "", "Authorization", "Bearer "+u.Token)
		if r.Status != 422 || !slices.Equal(uniq(r.Fields()), []string{tc.field}) {
			t.Errorf("?%s = %d %s, want 422 naming %s", tc.query, r.Status, r.Body, tc.field)
		}
	}
}

// TestCachedFirstPageKeepsItsLink: the first page, served from the cache,
// names the next page as the database's did.
func TestCachedFirstPageKeepsItsLink(t *testing.T) {
	e := newEnv(t, options{server: func(c *server.Config) { c.MaxActiveKeys = 0 }})
	u := e.MustLogin("manykeys")
	for i := range 103 {
		e.MustCreateKey(u, fmt.Sprint("k", i))
	}
	// The creations' notifications may still be arriving, each of which
	// drops a listing being filled: list until one is cached.
	var first *response
	for i := 0; i < 100 && !e.Srv.ListingCached(uuid.MustParse(u.ID)); i++ {
		first = e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
		time.Sleep(10 * time.Millisecond)
	}
	cachedBefore := metricValue(e.metrics(), "authapi_key_listings_total", `source="cache"`)
	again := e.do(true, "GET", "/v1/auth/api-keys", "", "Authorization", "Bearer "+u.Token)
	if metricValue(e.metrics(), "authapi_key_listings_total", `source="cache"`) != cachedBefore+1 {
		t.Fatal("the second listing did not come from the cache")
	}
	if first.Header.Get("Link") == "" || again.Header.Get("Link") != first.Header.Get("Link") || string(again.Body) != string(first.Body) {
		t.Fatalf("cached first page: Link %q, want %q as the database gave it", again.Header.Get("Link"), first.Header.Get("Link"))
	}
	if all := slices.Concat(e.listPages(u, "/v1/auth/api-keys")...); len(all) != 103 {
		t.Fatalf("following the default pages yields %d keys, want 103", len(all))
	}
}
