package server_test

// Property tests against the spec, the Schemathesis idea in Go: requests
// are generated from the schemas in openapi.yaml, valid ones and ones that
// break each constraint, and sent to a real server. Valid requests must be
// accepted (or get the 401/403/404/409 that the state at that moment
// demands, as a model of that state predicts), invalid ones a 422 problem
// naming exactly the broken field and never echoing its value; every
// response is checked against the spec by the harness's validating
// transport.
//
// The server's clock is the harness's settable one, and moving it is one of
// the steps, so that keys expire and rotated keys reach the end of their
// grace while the model watches. Access tokens have a clock of their own,
// which stands still unless a step moves it (see deleteAccount): moving
// the server's a week ahead does not log everyone out, and how old a
// login is depends on the steps alone, never on how fast they ran.
//
// rapid draws the values. The seed is fixed and the number of checks
// bounded so that `make test` stays fast and repeatable; -rapid.seed,
// -rapid.checks and -rapid.steps explore further, e.g.
//
//	go run ./cmd/testpg -- go test ./server -run TestSpecProperties -rapid.checks=500 -rapid.seed=0

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"authapi"
	"authapi/server"
	"authapi/token"
)

// propertyFlags fixes rapid's seed and bounds its work, unless the command
// line chose otherwise.
func propertyFlags(tb testing.TB) {
	tb.Helper()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, value := range map[string]string{
		"rapid.seed":       "20261130",
		"rapid.checks":     "20",
		"rapid.steps":      "40",
		"rapid.nofailfile": "true",
	} {
		if !set[name] {
			if err := flag.Set(name, value); err != nil {
				tb.Fatalf("flag.Set(%q, %q) = %v", name, value, err)
			}
		}
	}
}

// loadOperations returns the spec's operations by operationId.
func loadOperations(tb testing.TB) map[string]*openapi3.Operation {
	tb.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		tb.Fatalf("load openapi.yaml: %v", err)
	}
	ops := map[string]*openapi3.Operation{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			ops[op.OperationID] = op
		}
	}
	return ops
}

// bodySchema is the JSON request body's schema of op, or nil.
func bodySchema(op *openapi3.Operation) *openapi3.Schema {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// pathParam is the schema of op's path parameter name.
func pathParam(op *openapi3.Operation, name string) *openapi3.Schema {
	for _, p := range op.Parameters {
		if p.Value.In == "path" && p.Value.Name == name {
			return p.Value.Schema.Value
		}
	}
	return nil
}

// lengths are a string's lengths as the contract counts them (code points)
// and as JSON Schema validators in JavaScript, kin-openapi among them,
// count them (UTF-16 code units). A valid value is within bounds by both.
func lengthOK(s string, schema *openapi3.Schema) bool {
	for _, n := range []int{utf8.RuneCountInString(s), len(utf16.Encode([]rune(s)))} {
		if uint64(n) < schema.MinLength || (schema.MaxLength != nil && uint64(n) > *schema.MaxLength) {
			return false
		}
	}
	return true
}

// formatOK checks what a format adds to a pattern. Only the formats the
// spec's request schemas use are known; another one fails the test, so a
// new format gets a generator before it gets used. (date-time has a
// generator of its own, dateTime.)
func formatOK(tb testing.TB, format, s string) bool {
	switch format {
	case "", "password":
		return true
	case "email":
		local, _, _ := strings.Cut(s, "@")
		return len(local) <= 64 // RFC 5321; the pattern has the rest
	case "uuid":
		_, err := uuid.Parse(s)
		return err == nil && len(s) == 36
	}
	tb.Fatalf("no generator for format %q", format)
	return false
}

// stringGen generates strings valid under schema: its pattern, lengths and
// format.
func stringGen(tb testing.TB, schema *openapi3.Schema) *rapid.Generator[string] {
	tb.Helper()
	var g *rapid.Generator[string]
	switch {
	case schema.Format == "uuid":
		g = rapid.Custom(func(t *rapid.T) string {
			var id uuid.UUID
			copy(id[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "uuid bytes"))
			return id.String()
		})
	case schema.Pattern != "":
		g = rapid.StringMatching(schema.Pattern)
	default:
		max := 300
		if schema.MaxLength != nil {
			max = int(*schema.MaxLength)
		}
		g = rapid.StringOfN(rapid.Rune(), int(schema.MinLength), max, -1)
	}
	return g.Filter(func(s string) bool { return lengthOK(s, schema) && formatOK(tb, schema.Format, s) })
}

// drawer draws request values from schemas, and ways to break them. What
// a date-time field accepts is more than its schema says: the handler
// checks it against the server's clock. windows says how far ahead of now
// each one may be (after now, at most that far), and a date-time field
// without a window fails the test, so that a new one gets thought about.
type drawer struct {
	tb      testing.TB
	now     func() time.Time
	windows map[string]time.Duration // date-time property -> the most it may be ahead of now
}

// supported fails the test on a keyword the generators do not honour: a
// value they drew might break it and be refused for a reason the test
// cannot see.
func (d *drawer) supported(name string, s *openapi3.Schema) {
	d.tb.Helper()
	if len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) > 0 || s.Not != nil || s.MultipleOf != nil ||
		s.ExclusiveMin.IsSet() || s.ExclusiveMax.IsSet() || s.Nullable {
		d.tb.Fatalf("no generator for property %s: it uses allOf, anyOf, oneOf, not, multipleOf, an exclusive bound or nullable", name)
	}
}

// value generates JSON values valid under the schema of property name.
func (d *drawer) value(name string, s *openapi3.Schema) *rapid.Generator[any] {
	d.tb.Helper()
	d.supported(name, s)
	switch {
	case len(s.Enum) > 0:
		return rapid.SampledFrom(s.Enum)
	case s.Type.Is("string") && s.Format == "date-time":
		return asAny(d.dateTime(name))
	case s.Type.Is("string"):
		return asAny(stringGen(d.tb, s))
	case s.Type.Is("integer"):
		lo, hi := intBounds(d.tb, name, s)
		return asAny(rapid.OneOf(rapid.Just(lo), rapid.Just(hi), rapid.Int64Range(lo, hi)))
	case s.Type.Is("boolean"):
		return asAny(rapid.Bool())
	case s.Type.Is("array"):
		return asAny(d.array(name, s))
	}
	d.tb.Fatalf("no generator for property %s of type %v", name, s.Type)
	return nil
}

func asAny[V any](g *rapid.Generator[V]) *rapid.Generator[any] {
	return rapid.Map(g, func(v V) any { return v })
}

// intBounds are the least and greatest integers the schema allows.
func intBounds(tb testing.TB, name string, s *openapi3.Schema) (int64, int64) {
	tb.Helper()
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch s.Format {
	case "int32":
		lo, hi = math.MinInt32, math.MaxInt32
	case "", "int64":
	default:
		tb.Fatalf("no generator for integer format %q of %s", s.Format, name)
	}
	if s.Min != nil {
		lo = max(lo, int64(math.Ceil(*s.Min)))
	}
	if s.Max != nil {
		hi = min(hi, int64(math.Floor(*s.Max)))
	}
	if lo > hi {
		tb.Fatalf("%s allows no integer: minimum %d, maximum %d", name, lo, hi)
	}
	return lo, hi
}

// array generates arrays valid under s: its lengths, its items, and
// distinct items if it says so.
func (d *drawer) array(name string, s *openapi3.Schema) *rapid.Generator[[]any] {
	d.tb.Helper()
	items := s.Items.Value
	lo, hi := int(s.MinItems), int(s.MinItems)+5
	if s.MaxItems != nil {
		hi = int(*s.MaxItems)
	}
	if s.UniqueItems && len(items.Enum) > 0 {
		// Distinct members of an enum: a prefix of a permutation of it.
		hi = min(hi, len(items.Enum))
		if lo > hi {
			d.tb.Fatalf("%s needs %d distinct items of an enum of %d", name, lo, len(items.Enum))
		}
		return rapid.Custom(func(t *rapid.T) []any {
			perm := rapid.Permutation(items.Enum).Draw(t, name+" order")
			return slices.Clone(perm[:rapid.IntRange(lo, hi).Draw(t, name+" length")])
		})
	}
	elem := d.value(name+".N", items)
	if s.UniqueItems {
		return rapid.SliceOfNDistinct(elem, lo, hi, func(v any) string { b, _ := json.Marshal(v); return string(b) })
	}
	return rapid.SliceOfN(elem, lo, hi)
}

// dateTime generates instants in the window of property name, written in
// the ways RFC 3339 allows.
func (d *drawer) dateTime(name string) *rapid.Generator[string] {
	d.tb.Helper()
	ahead, ok := d.windows[name]
	if !ok {
		d.tb.Fatalf("no window for the date-time property %s: say how far from the server's clock it may be", name)
	}
	most := int64(ahead / time.Second)
	return rapid.Custom(func(t *rapid.T) string {
		// Whole seconds from 1: writing fewer fractional digits moves an
		// instant back by less than a second, so it stays after now.
		s := rapid.OneOf(rapid.Just(int64(1)), rapid.Just(most), rapid.Int64Range(1, most)).Draw(t, name+" seconds ahead")
		return rfc3339(t, name, d.now().Add(time.Duration(s)*time.Second))
	})
}

// rfc3339 writes at with a drawn zone offset and 0 to 9 fractional digits
// (fewer digits truncate it).
func rfc3339(t *rapid.T, name string, at time.Time) string {
	zone := rapid.SampledFrom([]*time.Location{
		time.UTC, time.FixedZone("+05:30", 5*3600+30*60), time.FixedZone("-08:00", -8*3600), time.FixedZone("+14:00", 14*3600),
	}).Draw(t, name+" zone")
	frac := rapid.SampledFrom([]string{"", ".000", ".000000", ".000000000"}).Draw(t, name+" fraction")
	return at.In(zone).Format("2006-01-02T15:04:05" + frac + "Z07:00")
}

// object generates JSON objects valid under schema: every required
// property, and each optional one or not.
func (d *drawer) object(schema *openapi3.Schema) *rapid.Generator[map[string]any] {
	d.tb.Helper()
	names := make([]string, 0, len(schema.Properties))
	gens := map[string]*rapid.Generator[any]{}
	for name, p := range schema.Properties {
		gens[name] = d.value(name, p.Value)
		names = append(names, name)
	}
	sort.Strings(names)
	return rapid.Custom(func(t *rapid.T) map[string]any {
		obj := map[string]any{}
		for _, name := range names {
			if slices.Contains(schema.Required, name) || rapid.Bool().Draw(t, name+" present") {
				obj[name] = gens[name].Draw(t, name)
			}
		}
		return obj
	})
}

// breakage is one way to make a valid value invalid. field and constraint
// name it for the tally (an array's items are broken under the array's
// name); apply returns the broken value (present false: remove the field)
// and the field the refusal must name, which for an item is its position,
// like scopes.1.
type breakage struct {
	field, constraint string
	apply             func(t *rapid.T, valid any) (broken any, present bool, named string)
}

// replace is a breakage that swaps the valid value for another.
func replace(field, constraint string, f func(t *rapid.T, valid any) any) breakage {
	return breakage{field, constraint, func(t *rapid.T, v any) (any, bool, string) { return f(t, v), true, field }}
}

// wrongTypes are JSON values of every type but the schema's.
func wrongTypes(s *openapi3.Schema) []any {
	var out []any
	for _, c := range []struct {
		v     any
		types []string // the schema types it is valid for
	}{
		{"text", []string{"string"}},
		{42, []string{"integer", "number"}},
		{4.5, []string{"number"}},
		{true, []string{"boolean"}},
		{nil, nil}, // no request schema is nullable (supported checks)
		{[]any{"x"}, []string{"array"}},
		{map[string]any{"a": "b"}, []string{"object"}},
	} {
		if !slices.ContainsFunc(c.types, s.Type.Is) {
			out = append(out, c.v)
		}
	}
	return out
}

// breakages lists every constraint of a field that can be broken.
func (d *drawer) breakages(field string, s *openapi3.Schema, required, typed bool) []breakage {
	var out []breakage
	if required {
		out = append(out, breakage{field, "required", func(*rapid.T, any) (any, bool, string) { return nil, false, field }})
	}
	if typed {
		wrong := wrongTypes(s)
		out = append(out, replace(field, "type", func(t *rapid.T, _ any) any {
			return rapid.SampledFrom(wrong).Draw(t, "wrong type")
		}))
	}
	if len(s.Enum) > 0 {
		out = append(out, replace(field, "enum", func(t *rapid.T, _ any) any {
			// Near misses, none of them part of the "must be one of"
			// message, so that the echo check stays meaningful.
			others := slices.DeleteFunc([]any{"ME:READ", "me:read ", "me.read", "me:delete", "admin", "*", ""}, func(v any) bool {
				return slices.Contains(s.Enum, v)
			})
			return rapid.SampledFrom(others).Draw(t, "not in the enum")
		}))
	}
	switch {
	case s.Type.Is("string"):
		out = append(out, d.stringBreakages(field, s)...)
	case s.Type.Is("integer"):
		lo, hi := intBounds(d.tb, field, s)
		if s.Min != nil {
			out = append(out, replace(field, "minimum", func(t *rapid.T, _ any) any {
				return lo - rapid.Int64Range(1, 1<<40).Draw(t, "below by")
			}))
		}
		if s.Max != nil {
			out = append(out, replace(field, "maximum", func(t *rapid.T, _ any) any {
				return hi + rapid.Int64Range(1, 1<<40).Draw(t, "above by")
			}))
		}
	case s.Type.Is("array"):
		out = append(out, d.arrayBreakages(field, s)...)
	}
	return out
}

func (d *drawer) stringBreakages(field string, s *openapi3.Schema) []breakage {
	var out []breakage
	if s.MinLength > 0 {
		out = append(out, replace(field, "minLength", func(_ *rapid.T, v any) any {
			return string([]rune(v.(string))[:s.MinLength-1])
		}))
	}
	if s.MaxLength != nil {
		out = append(out, replace(field, "maxLength", func(_ *rapid.T, v any) any {
			r := []rune(v.(string))
			if len(r) == 0 {
				r = []rune{'a'}
			}
			for uint64(len(r)) <= *s.MaxLength {
				r = append(r, r[len(r)-1])
			}
			return string(r)
		}))
	}
	if s.Pattern != "" {
		re := regexp.MustCompile(s.Pattern)
		out = append(out, replace(field, "pattern", func(t *rapid.T, v any) any {
			// Replace one character with one the pattern refuses there.
			r := []rune(v.(string))
			i := rapid.IntRange(0, len(r)-1).Draw(t, "position")
			for _, c := range rapid.Permutation([]rune{' ', '!', '\x00', '@', 'é', '\t', '.'}).Draw(t, "replacements") {
				b := slices.Clone(r)
				b[i] = c
				if s := string(b); !re.MatchString(s) {
					return s
				}
			}
			t.Skipf("no single-character change breaks %q at %d", string(r), i)
			return nil
		}))
	}
	switch s.Format {
	case "email":
		out = append(out, replace(field, "format", func(t *rapid.T, v any) any {
			_, domain, _ := strings.Cut(v.(string), "@")
			return strings.Repeat("a", 65) + "@" + domain // a local part longer than RFC 5321 allows
		}))
	case "uuid":
		out = append(out, replace(field, "format", func(t *rapid.T, v any) any {
			r := []rune(v.(string))
			i := rapid.SampledFrom([]int{0, 7, 9, 14, 19, 24, 35}).Draw(t, "position")
			r[i] = rapid.SampledFrom([]rune{'g', 'z', '-', '_', ' '}).Draw(t, "character")
			return string(r)
		}))
	case "date-time":
		out = append(out, d.dateTimeBreakages(field)...)
	}
	return out
}

// dateTimeBreakages break the RFC 3339 shape and the window of a
// date-time. A leap second (23:59:60) is one: no clock the server reads
// has it, so it is refused as a malformed date-time.
func (d *drawer) dateTimeBreakages(field string) []breakage {
	ahead := d.windows[field]
	most := int64(ahead / time.Second)
	return []breakage{
		replace(field, "format", func(t *rapid.T, v any) any {
			s := v.(string) // 2006-01-02T15:04:05[.999999999](Z|±07:00)
			return rapid.SampledFrom([]func() string{
				func() string { return s[:10] + " " + s[11:] },           // a space for the T
				func() string { return s[:19] },                          // no offset
				func() string { return s[:10] },                          // a date alone
				func() string { return s[:5] + "13" + s[7:] },            // month 13
				func() string { return s[:5] + "02-30" + s[10:] },        // 30 February
				func() string { return s[:11] + "24" + s[13:] },          // hour 24
				func() string { return s[:11] + "23:59:60" + s[19:] },    // a leap second
				func() string { return strings.ReplaceAll(s, "-", "/") }, // another separator
			}).Draw(t, "malformation")()
		}),
		replace(field, "future", func(t *rapid.T, _ any) any {
			back := rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(0, most)).Draw(t, "seconds back")
			return rfc3339(t, field, d.now().Add(-time.Duration(back)*time.Second))
		}),
		replace(field, "window", func(t *rapid.T, _ any) any {
			// From a second past the window's end: fewer digits move it
			// back by less than that.
			past := rapid.OneOf(rapid.Just(int64(1)), rapid.Int64Range(1, most)).Draw(t, "seconds past the window")
			return rfc3339(t, field, d.now().Add(ahead+time.Duration(past)*time.Second))
		}),
	}
}

func (d *drawer) arrayBreakages(field string, s *openapi3.Schema) []breakage {
	var out []breakage
	if s.MinItems > 0 {
		out = append(out, replace(field, "minItems", func(_ *rapid.T, v any) any {
			return slices.Clone(v.([]any)[:s.MinItems-1])
		}))
	}
	if s.MaxItems != nil {
		out = append(out, replace(field, "maxItems", func(_ *rapid.T, v any) any {
			a := slices.Clone(v.([]any))
			for i := 0; uint64(len(a)) <= *s.MaxItems; i++ {
				a = append(a, a[i])
			}
			return a
		}))
	}
	if s.UniqueItems {
		out = append(out, replace(field, "uniqueItems", func(t *rapid.T, v any) any {
			a := slices.Clone(v.([]any))
			i := rapid.IntRange(0, len(a)-1).Draw(t, "duplicated")
			if s.MaxItems == nil || uint64(len(a)) < *s.MaxItems {
				return slices.Insert(a, rapid.IntRange(0, len(a)).Draw(t, "at"), a[i])
			}
			if len(a) < 2 {
				t.Skipf("%s can hold one item only: no room for a duplicate", field)
			}
			a[(i+rapid.IntRange(1, len(a)-1).Draw(t, "overwritten after"))%len(a)] = a[i]
			return a
		}))
	}
	for _, ib := range d.breakages(field+".N", s.Items.Value, false, true) {
		out = append(out, breakage{field, "items " + ib.constraint, func(t *rapid.T, v any) (any, bool, string) {
			a := slices.Clone(v.([]any))
			i := rapid.IntRange(0, len(a)-1).Draw(t, "item")
			a[i], _, _ = ib.apply(t, a[i])
			return a, true, fmt.Sprintf("%s.%d", field, i)
		}})
	}
	return out
}

// propModel is what the server should hold, as the requests so far made it.
type propModel struct {
	users       map[string]*propUser // by lower-cased username; deleted accounts are not
	emails      map[string]*propUser // by lower-cased email: who holds it
	keys        map[string]*propKey  // by ID, deleted accounts' too
	deleted     []*propUser          // deleted accounts, whose keys and tokens must stay refused
	ended       []*propToken         // tokens ended before their expiry, which must stay refused
	maxKey      int                  // the server's active key cap
	maxLifetime time.Duration        // the server's bound on a key's expiry
	reauth      time.Duration        // how recent a login account deletion needs
	allScopes   []string             // a key's scopes when it is created without any, sorted
	meScopes    []string             // what GET /v1/me requires, from its x-required-scopes
	// what the verify operation requires by forwarded method, from its
	// x-required-scopes-by-method
	verifyScopes map[string][]string
	writeScopes  []string // what PATCH /v1/me requires
}

type propUser struct {
	id, username, email, password, fullName string
	token                                   string       // the newest working token, or ""
	live                                    []*propToken // the tokens that work, in issue order
	keys                                    []*propKey   // in creation order
	events                                  []propEvent  // its security log, oldest first
	deleted                                 bool
}

type propKey struct {
	id, name, raw string
	scopes        []string // sorted
	createdAt     time.Time
	lifetime      *time.Duration // what it was created to live, in whole seconds; a rotation renews it
	expiresAt     *time.Time     // its own expiry, or the end of its grace after a rotation
	lastUsed      *time.Time     // to the minute
	revoked       bool
	rotated       bool // replaced by a rotation: it works until its grace ends
	owner         *propUser
	seq           int // creation order: IDs are random, so they cannot order draws
}

// used records a use of the key at now, which the listing shows to the
// minute.
func (k *propKey) used(now time.Time) {
	minute := now.UTC().Truncate(time.Minute)
	if k.lastUsed == nil || minute.After(*k.lastUsed) {
		k.lastUsed = &minute
	}
}

// activeAt says whether the key works at now.
func (k *propKey) activeAt(now time.Time) bool {
	return !k.revoked && !k.owner.deleted && (k.expiresAt == nil || now.Before(*k.expiresAt))
}

// activeKeys counts u's keys that work at now, but except.
func (u *propUser) activeKeys(now time.Time, except *propKey) int {
	n := 0
	for _, k := range u.keys {
		if k != except && k.activeAt(now) {
			n++
		}
	}
	return n
}

// loggedIn lists the users that hold a token, in a stable order.
func (m *propModel) loggedIn() []*propUser {
	var out []*propUser
	for _, u := range m.users {
		if u.token != "" {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].username < out[j].username })
	return out
}

func (m *propModel) allKeys() []*propKey {
	out := make([]*propKey, 0, len(m.keys))
	for _, k := range m.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (m *propModel) sortedUsers() []*propUser {
	out := make([]*propUser, 0, len(m.users))
	for _, u := range m.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].username < out[j].username })
	return out
}

// propEnv is a server, the model of its state, and the spec's operations.
type propEnv struct {
	*env
	m      *propModel
	d      *drawer
	ops    map[string]*openapi3.Operation
	seen   map[string]int // outcomes met: "operation outcome"
	tokens *clock         // the access tokens' clock
}

// send makes one request; onSpec says whether it should satisfy the spec
// (the transport then checks it does). A violation the transport reports
// fails the property too, so that rapid shrinks it. A nil body sends none.
func (p *propEnv) send(t *rapid.T, onSpec bool, method, path string, body any, header ...string) *response {
	var raw string
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("marshal %v: %v", body, err)
		}
		raw = string(b)
	}
	r := p.do(onSpec, method, path, raw, header...)
	if p.t.Failed() {
		t.Fatalf("%s %s %s: the spec check failed (see above)", method, path, raw)
	}
	return r
}

// expectProblem checks r is a problem of status and type naming exactly
// fields, in any order.
func expectProblem(t *rapid.T, what string, r *response, status int, typ string, fields ...string) {
	p := r.Problem()
	if r.Status != status || p.Type != typ {
		t.Fatalf("%s = %d %s, want %d %s", what, r.Status, r.Body, status, typ)
	}
	got := slices.Compact(sorted(r.Fields()))
	if want := sorted(slices.Clone(fields)); !slices.Equal(got, want) {
		t.Fatalf("%s names fields %v, want %v: %s", what, got, want, r.Body)
	}
}

// expectNoEcho checks a refusal does not repeat the refused value.
func expectNoEcho(t *rapid.T, what string, r *response, value any) {
	s, ok := value.(string)
	if !ok || utf8.RuneCountInString(s) < 6 {
		return // too short to tell an echo from a coincidence
	}
	quoted, _ := json.Marshal(s)
	if strings.Contains(string(r.Body), s) || strings.Contains(string(r.Body), string(quoted[1:len(quoted)-1])) {
		t.Fatalf("%s echoes the refused value %q: %s", what, s, r.Body)
	}
}

// checkBrokenBodies sends valid to an operation with a JSON body, with each of the
// schema's constraints broken in turn, and expects a 422 naming the field.
func (p *propEnv) checkBrokenBodies(t *rapid.T, opID, method, path string, valid map[string]any, header ...string) {
	schema := bodySchema(p.ops[opID])
	names := make([]string, 0, len(schema.Properties))
	for name := range schema.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		prop := schema.Properties[name].Value
		for _, b := range p.d.breakages(name, prop, slices.Contains(schema.Required, name), true) {
			body := map[string]any{}
			for k, v := range valid {
				body[k] = v
			}
			v, ok := valid[name]
			if !ok {
				v = p.d.value(name, prop).Draw(t, name+" to break")
			}
			broken, present, named := b.apply(t, v)
			if present {
				body[name] = broken
			} else {
				delete(body, name)
			}
			what := fmt.Sprintf("%s with %s breaking %s", opID, b.field, b.constraint)
			r := p.send(t, false, method, path, body, header...)
			expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", named)
			expectNoEcho(t, what, r, broken)
			p.seen[what]++
		}
		p.checkTwins(t, opID, method, path, valid, name, prop, header...)
	}
}

// checkTwins sends valid with a member whose name folds to the property
// name (another case, or a Unicode simple folding such as ſ for s), next
// to the property and in its place, and expects a 422 naming the property:
// the handler must never act on a value the validator did not check.
func (p *propEnv) checkTwins(t *rapid.T, opID, method, path string, valid map[string]any, name string, prop *openapi3.Schema, header ...string) {
	twin := twinName(t, name)
	value := p.d.value(name, prop).Draw(t, name+" for its twin")
	for _, alone := range []bool{false, true} {
		body := map[string]any{}
		for k, v := range valid {
			body[k] = v
		}
		if _, ok := body[name]; !ok && !alone {
			body[name] = p.d.value(name, prop).Draw(t, name)
		}
		if alone {
			delete(body, name)
		}
		body[twin] = value
		what := fmt.Sprintf("%s with a twin of %s", opID, name)
		if alone {
			what = fmt.Sprintf("%s with a lone twin of %s", opID, name)
		}
		r := p.send(t, false, method, path, body, header...)
		expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", name)
		p.seen[what]++
	}
}

// twinName draws a name other than name that strings.EqualFold takes for
// it.
func twinName(t *rapid.T, name string) string {
	folds := strings.NewReplacer("s", "ſ", "k", "\u212a", "K", "\u212a")
	for {
		twin := recase(t, name)
		if rapid.Bool().Draw(t, "fold beyond case") {
			twin = folds.Replace(twin)
		}
		if twin != name {
			return twin
		}
	}
}

// checkBrokenKeyIDs sends an operation on /v1/auth/api-keys/{key_id}...
// with each constraint of key_id broken, and expects a 422 naming it. It
// returns a valid key_id.
func (p *propEnv) checkBrokenKeyIDs(t *rapid.T, opID, method string, path func(id string) string, u *propUser) string {
	schema := pathParam(p.ops[opID], "key_id")
	valid := stringGen(p.t, schema).Draw(t, "key_id")
	for _, b := range p.d.breakages("key_id", schema, false, false) {
		broken, _, _ := b.apply(t, valid)
		what := opID + " with key_id breaking " + b.constraint
		r := p.send(t, false, method, path(pathEscape(broken.(string))), nil, "Authorization", "Bearer "+u.token)
		expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", "key_id")
		expectNoEcho(t, what, r, broken)
		p.seen[what]++
	}
	return valid
}

// checkBrokenHeaders sends an operation with valid header parameters
// (pairs), with each constraint of each broken in turn, and expects a 422
// naming it. A header cannot carry every value a JSON string can: a
// pattern is broken inside the value (a server trims spaces at its ends),
// with characters a client can send.
func (p *propEnv) checkBrokenHeaders(t *rapid.T, opID, method, path string, valid []string, extra ...string) {
	for _, ref := range p.ops[opID].Parameters {
		param := ref.Value
		i := slices.Index(valid, param.Name)
		v := stringGen(p.t, param.Schema.Value).Draw(t, param.Name+" to break")
		if i >= 0 {
			v = valid[i+1]
		}
		for _, b := range p.d.breakages(param.Name, param.Schema.Value, false, false) {
			broken := ""
			if b.constraint == "pattern" {
				re := regexp.MustCompile(param.Schema.Value.Pattern)
				r := []rune(v)
				at := rapid.IntRange(0, len(r)).Draw(t, "inserted at")
				for _, c := range rapid.Permutation([]rune{' ', '(', ',', '@', 'é', '\t'}).Draw(t, "inserted") {
					b := string(slices.Insert(slices.Clone(r), at, c))
					if s := strings.Trim(b, " \t"); s == b && !re.MatchString(b) && lengthOK(b, param.Schema.Value) {
						broken = b
						break
					}
				}
				if broken == "" {
					t.Skipf("no character inserted at %d breaks %q", at, v)
				}
			} else {
				x, _, _ := b.apply(t, v)
				broken = x.(string)
			}
			h := slices.Clone(valid)
			if i >= 0 {
				h[i+1] = broken
			} else {
				h = append(h, param.Name, broken)
			}
			what := fmt.Sprintf("%s with %s breaking %s", opID, param.Name, b.constraint)
			r := p.sendHeaders(t, method, path, append(h, extra...))
			expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", param.Name)
			expectNoEcho(t, what, r, broken)
			p.seen[what]++
		}
	}
}

// checkBrokenQuery sends a listing with each constraint of each of its
// query parameters broken in turn, and expects a 422 naming it.
func (p *propEnv) checkBrokenQuery(t *rapid.T, opID, path string, u *propUser) {
	for _, param := range p.ops[opID].Parameters {
		if param.Value.In != "query" {
			continue
		}
		name, schema := param.Value.Name, param.Value.Schema.Value
		var valid any
		if schema.Type.Is("integer") {
			lo, hi := intBounds(p.t, name, schema)
			valid = rapid.Int64Range(lo, hi).Draw(t, name)
		} else {
			valid = stringGen(p.t, schema).Draw(t, name)
		}
		for _, b := range p.d.breakages(name, schema, false, false) {
			broken, _, _ := b.apply(t, valid)
			what := opID + " with " + name + " breaking " + b.constraint
			r := p.send(t, false, "GET", path+"?"+url.Values{name: {fmt.Sprint(broken)}}.Encode(), nil, "Authorization", "Bearer "+u.token)
			expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", name)
			expectNoEcho(t, what, r, broken)
			p.seen[what]++
		}
	}
}

// sendHeaders sends a request off the spec with header pairs as they are,
// empty values included (env.do drops those).
func (p *propEnv) sendHeaders(t *rapid.T, method, path string, header []string) *response {
	req, err := http.NewRequestWithContext(offSpec(ctx), method, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header[http.CanonicalHeaderKey(header[i])] = append(req.Header[http.CanonicalHeaderKey(header[i])], header[i+1])
	}
	resp, err := p.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := &response{Status: resp.StatusCode, Header: resp.Header}
	out.Body, _ = io.ReadAll(resp.Body)
	json.Unmarshal(out.Body, &out.JSON)
	if p.t.Failed() {
		t.Fatalf("%s %s: the spec check failed (see above)", method, path)
	}
	return out
}

const verifyPath = "/v1/auth/verify"

// forwardedHeaders draws valid forwarded-request headers for the verify
// operation: a method (the usual ones, or any token the spec allows) and a
// request target under /v1/me or outside it, each under either of its
// names, or both.
func (p *propEnv) forwardedHeaders(t *rapid.T) []string {
	op := p.ops["verifyApiKey"]
	schemas := map[string]*openapi3.Schema{}
	for _, param := range op.Parameters {
		schemas[param.Value.Name] = param.Value.Schema.Value
	}
	method := rapid.OneOf(rapid.SampledFrom([]string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}),
		stringGen(p.t, schemas["X-Forwarded-Method"])).Draw(t, "forwarded method")
	segment := rapid.StringMatching(`[A-Za-z0-9_~-]{1,12}`)
	target := rapid.OneOf(
		rapid.Just("/v1/me"),
		rapid.Map(rapid.SliceOfN(segment, 1, 4), func(s []string) string { return "/v1/me/" + strings.Join(s, "/") }),
		rapid.SampledFrom([]string{"/v1/auth/api-keys", "/v1/me/../admin", "/v1/me%2f..%2fadmin", "//v1/me", "/v1/meow", "/V1/ME"}),
		stringGen(p.t, schemas["X-Forwarded-Uri"]).Filter(func(s string) bool { return !strings.HasPrefix(s, "/v1/m") }),
	).Draw(t, "forwarded target")
	var h []string
	for _, pair := range [][3]string{{"X-Forwarded-Method", "X-Original-Method", method}, {"X-Forwarded-Uri", "X-Original-URI", target}} {
		switch rapid.IntRange(0, 2).Draw(t, pair[0]+" as") {
		case 0:
			h = append(h, pair[0], pair[2])
		case 1:
			h = append(h, pair[1], pair[2])
		default:
			h = append(h, pair[0], pair[2], pair[1], pair[2])
		}
	}
	return h
}

func keyPath(id string) string    { return "/v1/auth/api-keys/" + id }
func rotatePath(id string) string { return "/v1/auth/api-keys/" + id + "/rotate" }

// propOp is one operation's property: broken sends requests that break
// each constraint of its inputs (and lack its credential), valid sends one
// valid request and checks the outcome against the model.
type propOp struct {
	broken, valid func(*rapid.T)
}

func operationChecks(p *propEnv) map[string]propOp {
	body := func(t *rapid.T, opID string) map[string]any {
		return p.d.object(bodySchema(p.ops[opID])).Draw(t, opID+" body")
	}
	user := func(t *rapid.T) *propUser { return rapid.SampledFrom(p.m.loggedIn()).Draw(t, "user") }
	checks := map[string]propOp{
		"registerUser": {
			broken: func(t *rapid.T) {
				p.checkBrokenBodies(t, "registerUser", "POST", "/v1/auth/register", body(t, "registerUser"))
			},
			valid: func(t *rapid.T) {
				b := body(t, "registerUser")
				if rapid.IntRange(0, 3).Draw(t, "with a taken name") == 0 {
					taken := rapid.SampledFrom(p.m.sortedUsers()).Draw(t, "registered user")
					if rapid.Bool().Draw(t, "take the username") {
						b["username"] = recase(t, taken.username) // unique without regard to case
					}
					if rapid.Bool().Draw(t, "take the email") {
						b["email"] = recase(t, taken.email) // likewise
					}
				}
				p.register(t, b)
			},
		},
		"login": {
			broken: func(t *rapid.T) {
				p.checkBrokenBodies(t, "login", "POST", "/v1/auth/login", body(t, "login"))
			},
			valid: func(t *rapid.T) {
				b := body(t, "login")
				switch rapid.IntRange(0, 3).Draw(t, "as whom") {
				case 1:
					u := rapid.SampledFrom(p.m.sortedUsers()).Draw(t, "known user")
					b = map[string]any{"username": recase(t, u.username), "password": u.password}
				case 2: // a failed login of a user, which its log records
					u := rapid.SampledFrom(p.m.sortedUsers()).Draw(t, "known user")
					b["username"] = recase(t, u.username)
				case 3: // the account is gone, or its name someone else's now
					if len(p.m.deleted) > 0 {
						u := rapid.SampledFrom(p.m.deleted).Draw(t, "deleted user")
						b = map[string]any{"username": recase(t, u.username), "password": u.password}
					}
				}
				p.login(t, b)
			},
		},
		"createApiKey": {
			broken: func(t *rapid.T) {
				b := body(t, "createApiKey")
				p.checkBrokenBodies(t, "createApiKey", "POST", "/v1/auth/api-keys", b, "Authorization", "Bearer "+user(t).token)
				r := p.send(t, false, "POST", "/v1/auth/api-keys", b)
				expectProblem(t, "createApiKey without a token", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) { p.createKey(t, user(t), body(t, "createApiKey")) },
		},
		"listApiKeys": {
			broken: func(t *rapid.T) {
				p.checkBrokenQuery(t, "listApiKeys", "/v1/auth/api-keys", user(t))
				r := p.send(t, true, "GET", "/v1/auth/api-keys", nil)
				expectProblem(t, "listApiKeys without a token", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) { p.listKeys(t, user(t)) },
		},
		"revokeApiKey": {
			broken: func(t *rapid.T) {
				valid := p.checkBrokenKeyIDs(t, "revokeApiKey", "DELETE", keyPath, user(t))
				r := p.send(t, true, "DELETE", keyPath(valid), nil)
				expectProblem(t, "revokeApiKey without a token", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) {
				u := user(t)
				p.revoke(t, u, p.drawKeyID(t, u))
			},
		},
		"rotateApiKey": {
			broken: func(t *rapid.T) {
				u := user(t)
				id := p.checkBrokenKeyIDs(t, "rotateApiKey", "POST", rotatePath, u)
				if working := slices.DeleteFunc(slices.Clone(u.keys), func(k *propKey) bool { return !k.activeAt(p.Clock.Now()) }); len(working) > 0 {
					// A refused body must not rotate a key that could be.
					id = rapid.SampledFrom(working).Draw(t, "own key").id
				}
				p.checkBrokenBodies(t, "rotateApiKey", "POST", rotatePath(id), body(t, "rotateApiKey"), "Authorization", "Bearer "+u.token)
				r := p.send(t, true, "POST", rotatePath(id), nil)
				expectProblem(t, "rotateApiKey without a token", r, 401, "urn:authapi:problem:unauthenticated")
				if k := rapid.SampledFrom(p.m.allKeys()).Draw(t, "a key instead of a token"); k.activeAt(p.Clock.Now()) {
					r := p.send(t, true, "POST", rotatePath(k.id), nil, "X-API-Key", k.raw)
					expectProblem(t, "rotateApiKey with an API key", r, 401, "urn:authapi:problem:unauthenticated")
				}
			},
			valid: func(t *rapid.T) {
				u := user(t)
				id := p.drawKeyID(t, u)
				switch rapid.SampledFrom([]string{"drawn", "over the cap", "just revoked", "someone else's", "expired"}).Draw(t, "which key") {
				case "over the cap":
					id = p.overCap(t, u, func() map[string]any { return body(t, "createApiKey") })
				case "just revoked":
					if own := slices.DeleteFunc(slices.Clone(u.keys), func(k *propKey) bool { return k.revoked }); len(own) > 0 {
						id = rapid.SampledFrom(own).Draw(t, "key to revoke").id
						p.revoke(t, u, id)
					}
				case "someone else's": // a deleted account's too
					if others := slices.DeleteFunc(p.m.allKeys(), func(k *propKey) bool { return k.owner == u }); len(others) > 0 {
						id = rapid.SampledFrom(others).Draw(t, "someone else's key").id
					}
				case "expired":
					if ended := slices.DeleteFunc(slices.Clone(u.keys), func(k *propKey) bool { return k.revoked || k.activeAt(p.Clock.Now()) }); len(ended) > 0 {
						id = rapid.SampledFrom(ended).Draw(t, "expired key").id
					}
				}
				var b map[string]any // the body is optional: none at all is valid
				if rapid.Bool().Draw(t, "with a body") {
					b = body(t, "rotateApiKey")
				}
				now := p.Clock.Now()
				if old := p.rotate(t, u, id, b); old != nil && old.activeAt(now) && rapid.Bool().Draw(t, "wait for the grace to end") {
					p.Clock.Add(old.expiresAt.Sub(now) - rapid.SampledFrom([]time.Duration{0, time.Nanosecond}).Draw(t, "short of it by"))
					p.me(t, old)
				}
			},
		},
		"verifyApiKey": {
			broken: func(t *rapid.T) {
				// A working key, so that the headers are what is refused.
				working := func() []*propKey {
					return slices.DeleteFunc(p.m.allKeys(), func(k *propKey) bool { return !k.activeAt(p.Clock.Now()) })
				}
				if len(working()) == 0 {
					p.createKey(t, user(t), map[string]any{"name": "for the headers"})
				}
				k := rapid.SampledFrom(working()).Draw(t, "working key")
				p.checkBrokenHeaders(t, "verifyApiKey", "GET", verifyPath, p.forwardedHeaders(t), "X-API-Key", k.raw)
				h := []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/v1/me"}
				r := p.send(t, true, "GET", verifyPath, nil, h...)
				expectProblem(t, "verifyApiKey without a key", r, 401, "urn:authapi:problem:unauthenticated")
				r = p.send(t, true, "GET", verifyPath, nil, append(h, "Authorization", "Bearer "+user(t).token)...)
				expectProblem(t, "verifyApiKey with a JWT", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) {
				if rapid.Bool().Draw(t, "with a new key of one scope") {
					// Keys drawn by createApiKey mostly have both scopes.
					scope := rapid.SampledFrom(p.m.allScopes).Draw(t, "its scope")
					p.createKey(t, user(t), map[string]any{"name": "one scope", "scopes": []any{scope}})
				}
				p.verify(t, rapid.SampledFrom(p.m.allKeys()).Draw(t, "key"), p.forwardedHeaders(t))
			},
		},
		"getCurrentUser": {
			broken: func(t *rapid.T) {
				r := p.send(t, true, "GET", "/v1/me", nil)
				expectProblem(t, "getCurrentUser without a key", r, 401, "urn:authapi:problem:unauthenticated")
				r = p.send(t, true, "GET", "/v1/me", nil, "Authorization", "Bearer "+user(t).token)
				expectProblem(t, "getCurrentUser with a JWT", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) {
				k := rapid.SampledFrom(p.m.allKeys()).Draw(t, "key")
				if rapid.IntRange(0, 3).Draw(t, "kind of key") == 0 {
					k = p.keyWith(t, p.m.meScopes, false) // 403, which drawn scopes seldom give
				}
				p.me(t, k)
			},
		},
	}
	maps.Copy(checks, p.accountChecks(user))
	return checks
}

// overCap fills u's keys up to the cap and rotates one with a grace
// period, which leaves u one key over the cap until the grace ends (the old
// key leaves room for its replacement). It returns another of u's working
// keys, whose rotation is then refused.
func (p *propEnv) overCap(t *rapid.T, u *propUser, createBody func() map[string]any) string {
	for u.activeKeys(p.Clock.Now(), nil) < p.m.maxKey {
		p.createKey(t, u, createBody())
	}
	working := func() []*propKey {
		return slices.DeleteFunc(slices.Clone(u.keys), func(k *propKey) bool { return !k.activeAt(p.Clock.Now()) })
	}
	first := rapid.SampledFrom(working()).Draw(t, "key rotated with a grace")
	_, most := intBounds(p.t, "grace_seconds", bodySchema(p.ops["rotateApiKey"]).Properties["grace_seconds"].Value)
	p.rotate(t, u, first.id, map[string]any{"grace_seconds": rapid.Int64Range(1, most).Draw(t, "grace_seconds")})
	return rapid.SampledFrom(slices.DeleteFunc(working(), func(k *propKey) bool { return k == first })).Draw(t, "another key").id
}

// drawKeyID picks a key_id to act on as u: one of u's working, revoked or
// expired keys, someone else's, or an unknown one, so that each outcome
// comes up; the model, not the pick, says what the server must answer.
func (p *propEnv) drawKeyID(t *rapid.T, u *propUser) string {
	now := p.Clock.Now()
	var own, revoked, expired, foreign []*propKey
	for _, k := range p.m.allKeys() {
		switch {
		case k.owner != u:
			foreign = append(foreign, k)
		case k.revoked:
			revoked = append(revoked, k)
		case !k.activeAt(now):
			expired = append(expired, k)
		default:
			own = append(own, k)
		}
	}
	switch kind := rapid.IntRange(0, 5).Draw(t, "kind of key"); {
	case kind <= 1 && len(own) > 0:
		return rapid.SampledFrom(own).Draw(t, "own key").id
	case kind == 2 && len(revoked) > 0:
		return rapid.SampledFrom(revoked).Draw(t, "revoked key").id
	case kind == 3 && len(expired) > 0:
		return rapid.SampledFrom(expired).Draw(t, "expired key").id
	case kind == 4 && len(foreign) > 0:
		return rapid.SampledFrom(foreign).Draw(t, "foreign key").id
	}
	return stringGen(p.t, pathParam(p.ops["revokeApiKey"], "key_id")).Draw(t, "unknown key_id")
}

// pathEscape keeps a broken key_id in the path, whatever it holds.
func pathEscape(s string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F", " ", "%20", "\t", "%09", "?", "%3F", "#", "%23").Replace(s)
}

// recase changes the case of some letters: usernames match without
// regard to case.
func recase(t *rapid.T, s string) string {
	r := []rune(s)
	for i := range r {
		if rapid.Bool().Draw(t, "flip case") {
			if up := strings.ToUpper(string(r[i])); up != string(r[i]) {
				r[i] = []rune(up)[0]
			} else {
				r[i] = []rune(strings.ToLower(string(r[i])))[0]
			}
		}
	}
	return string(r)
}

// wait moves the server's clock: by up to two days, or to the very end of
// some key's life, or a nanosecond before it.
func (p *propEnv) wait(t *rapid.T) {
	now := p.Clock.Now()
	var ending []*propKey
	for _, k := range p.m.allKeys() {
		if !k.revoked && !k.owner.deleted && k.expiresAt != nil && k.expiresAt.After(now) {
			ending = append(ending, k)
		}
	}
	d := time.Duration(rapid.Int64Range(1, 2*24*3600).Draw(t, "seconds to wait")) * time.Second
	if len(ending) > 0 && rapid.Bool().Draw(t, "to a key's end") {
		k := rapid.SampledFrom(ending).Draw(t, "key to wait for")
		d = k.expiresAt.Sub(now) - rapid.SampledFrom([]time.Duration{0, time.Nanosecond}).Draw(t, "short of it by")
	}
	p.Clock.Add(d)
}

// The valid requests, one per operation, each checked against the model.

func (p *propEnv) register(t *rapid.T, body map[string]any) {
	u := &propUser{username: body["username"].(string), email: body["email"].(string), password: body["password"].(string), fullName: body["full_name"].(string)}
	var taken []string
	if p.m.users[strings.ToLower(u.username)] != nil {
		taken = append(taken, "username")
	}
	if p.m.emails[strings.ToLower(u.email)] != nil {
		taken = append(taken, "email")
	}
	r := p.send(t, true, "POST", "/v1/auth/register", body)
	if len(taken) > 0 {
		expectProblem(t, "registerUser with a taken "+strings.Join(taken, " and "), r, 409, "urn:authapi:problem:already-registered", taken...)
		p.seen["registerUser 409"]++
		return
	}
	if r.Status != 200 || r.JSON["username"] != u.username || r.JSON["email"] != u.email || r.JSON["full_name"] != u.fullName {
		t.Fatalf("registerUser(%v) = %d %s, want 200 with the fields as sent", body, r.Status, r.Body)
	}
	p.seen["registerUser 200"]++
	u.id = r.JSON["id"].(string)
	p.m.users[strings.ToLower(u.username)] = u
	p.m.emails[strings.ToLower(u.email)] = u
}

func (p *propEnv) login(t *rapid.T, body map[string]any) {
	name, _ := body["username"].(string)
	u := p.m.users[strings.ToLower(name)]
	r := p.send(t, true, "POST", "/v1/auth/login", body)
	if u == nil || u.password != body["password"] {
		expectProblem(t, "login with wrong credentials", r, 401, "urn:authapi:problem:invalid-credentials")
		p.seen["login 401"]++
		if u != nil { // an unknown username has no log to write to
			u.record("login_failed", nil)
			p.seen["login 401 with a user's wrong password"]++
		}
		return
	}
	tok, _ := r.JSON["access_token"].(string)
	if r.Status != 200 || tok == "" || r.JSON["token_type"] != "bearer" {
		t.Fatalf("login as %q = %d %s, want 200 with a bearer token", u.username, r.Status, r.Body)
	}
	p.seen["login 200"]++
	u.record("login_succeeded", nil)
	p.issued(t, u, tok)
}

// created checks the answer of a create or a rotation, which both make a
// key: 200, an active key of that name, scopes and expiry, and its prefix.
func (p *propEnv) created(t *rapid.T, what string, r *response, u *propUser, name string, scopes []string, expires *time.Time, lifetime *time.Duration) *propKey {
	raw, _ := r.JSON["raw_key"].(string)
	if r.Status != 200 || r.JSON["name"] != name || r.JSON["is_active"] != true || len(raw) < 8 || r.JSON["prefix"] != raw[:8] {
		t.Fatalf("%s = %d %s, want 200 with the name %q, an active key and its prefix", what, r.Status, r.Body, name)
	}
	if got := scopesOf(r.JSON["scopes"]); !slices.Equal(got, scopes) {
		t.Fatalf("%s has scopes %v, want %v", what, got, scopes)
	}
	if got, want := timeOf(t, r.JSON["expires_at"]), formatTime(expires); got != want {
		t.Fatalf("%s expires at %s, want %s", what, got, want)
	}
	created, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r.JSON["created_at"]))
	if err != nil {
		t.Fatalf("%s: created_at %v: %v", what, r.JSON["created_at"], err)
	}
	for _, k := range p.m.keys {
		if k.raw == raw {
			t.Fatalf("%s gave a raw key given before", what)
		}
	}
	k := &propKey{id: r.JSON["id"].(string), name: name, raw: raw, scopes: scopes, createdAt: created, expiresAt: expires, lifetime: lifetime, owner: u, seq: len(p.m.keys)}
	u.keys = append(u.keys, k)
	p.m.keys[k.id] = k
	return k
}

func (p *propEnv) createKey(t *rapid.T, u *propUser, body map[string]any) {
	now := p.Clock.Now()
	r := p.send(t, true, "POST", "/v1/auth/api-keys", body, "Authorization", "Bearer "+u.token)
	if u.activeKeys(now, nil) >= p.m.maxKey {
		expectProblem(t, "createApiKey at the cap", r, 409, "urn:authapi:problem:api-key-limit")
		p.seen["createApiKey 409"]++
		return
	}
	scopes := p.m.allScopes
	if s, ok := body["scopes"]; ok {
		scopes = scopesOf(s)
	}
	var expires *time.Time
	if s, ok := body["expires_at"].(string); ok {
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("expires_at %q drawn as valid: %v", s, err)
		}
		at = at.Truncate(time.Microsecond) // PostgreSQL's precision, never rounded up
		expires = &at
	}
	var lifetime *time.Duration
	if expires != nil {
		life := (expires.Sub(now) + time.Second - 1).Truncate(time.Second) // whole seconds, rounded up
		lifetime = &life
	}
	k := p.created(t, fmt.Sprintf("createApiKey(%v)", body), r, u, body["name"].(string), scopes, expires, lifetime)
	u.record("api_key_created", k)
	p.seen["createApiKey 200"]++
}

func (p *propEnv) listKeys(t *rapid.T, u *propUser) {
	// Last uses are written in the background, every few seconds; here,
	// now.
	if err := p.Srv.KeyUses().Write(ctx); err != nil {
		t.Fatalf("KeyUses().Write = %v", err)
	}
	now := p.Clock.Now()
	// The whole listing, a page at a time when a page size is drawn.
	path := "/v1/auth/api-keys"
	if rapid.Bool().Draw(t, "paged") {
		path += "?limit=" + strconv.Itoa(rapid.IntRange(1, 5).Draw(t, "page size"))
	}
	var listed []map[string]any
	for pages := 0; path != ""; pages++ {
		r := p.send(t, true, "GET", path, nil, "Authorization", "Bearer "+u.token)
		var page []map[string]any
		if r.Status != 200 || json.Unmarshal(r.Body, &page) != nil || pages > 100 {
			t.Fatalf("listApiKeys as %q (%s) = %d %s, want 200", u.username, path, r.Status, r.Body)
		}
		listed = append(listed, page...)
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			p.seen["listApiKeys 200 with a next page"]++
		}
	}
	var got, want []string
	for _, k := range listed {
		got = append(got, fmt.Sprintf("%v %v active=%v revoked=%v expires=%s used=%s scopes=%v",
			k["id"], k["name"], k["is_active"], k["revoked_at"] != nil, timeOf(t, k["expires_at"]), timeOf(t, k["last_used_at"]), scopesOf(k["scopes"])))
	}
	for _, k := range slices.Backward(u.keys) { // newest first
		want = append(want, fmt.Sprintf("%v %v active=%v revoked=%v expires=%s used=%s scopes=%v",
			k.id, k.name, k.activeAt(now), k.revoked, formatTime(k.expiresAt), formatTime(k.lastUsed), k.scopes))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listApiKeys as %q =\n%s\nwant\n%s", u.username, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p.seen["listApiKeys 200"]++
}

func (p *propEnv) revoke(t *rapid.T, u *propUser, id string) {
	r := p.send(t, true, "DELETE", keyPath(id), nil, "Authorization", "Bearer "+u.token)
	k := p.m.keys[id]
	if k == nil || k.owner != u {
		expectProblem(t, "revokeApiKey of a key that is not the caller's", r, 404, "urn:authapi:problem:not-found")
		p.seen["revokeApiKey 404"]++
		return
	}
	if r.Status != 204 || len(r.Body) != 0 {
		t.Fatalf("revokeApiKey(%s) = %d %s, want 204", id, r.Status, r.Body)
	}
	p.seen["revokeApiKey 204"]++
	if !k.revoked { // revoking again changes nothing, so it records nothing
		u.record("api_key_revoked", k)
	}
	k.revoked = true
}

// rotate rotates key id as u with body (nil: none) and, when it worked,
// tries the old key and the new one, and returns the old one.
func (p *propEnv) rotate(t *rapid.T, u *propUser, id string, body map[string]any) *propKey {
	var grace time.Duration
	if g, ok := body["grace_seconds"]; ok {
		grace = time.Duration(g.(int64)) * time.Second
	}
	var payload any // a nil map would be sent as null
	if body != nil {
		payload = body
	}
	now := p.Clock.Now()
	r := p.send(t, true, "POST", rotatePath(id), payload, "Authorization", "Bearer "+u.token)
	k := p.m.keys[id]
	for _, c := range []struct {
		why  string
		when bool
	}{
		{"unknown", k == nil},
		{"foreign", k != nil && k.owner != u},
		{"revoked", k != nil && k.revoked},
		{"expired", k != nil && !k.activeAt(now)},
	} {
		if c.when {
			expectProblem(t, "rotateApiKey of a "+c.why+" key", r, 404, "urn:authapi:problem:not-found")
			p.seen["rotateApiKey 404 "+c.why]++
			return nil
		}
	}
	if u.activeKeys(now, k) >= p.m.maxKey {
		expectProblem(t, "rotateApiKey over the cap", r, 409, "urn:authapi:problem:api-key-limit")
		p.seen["rotateApiKey 409"]++
		return nil
	}
	// The new key lives as long as the old one was created to live,
	// counted from now, within the lifetime bound.
	var expires *time.Time
	if k.lifetime != nil {
		end := now.Add(min(*k.lifetime, p.m.maxLifetime)).Truncate(time.Microsecond)
		expires = &end
	}
	next := p.created(t, fmt.Sprintf("rotateApiKey(%s, %v)", id, body), r, u, k.name, k.scopes, expires, k.lifetime)
	p.seen["rotateApiKey 200"]++
	u.record("api_key_rotated", k) // the key rotated, not its replacement
	// The old key ends when its grace does, unless it ends sooner anyway.
	if end := now.Add(grace).Truncate(time.Microsecond); k.expiresAt == nil || end.Before(*k.expiresAt) {
		k.expiresAt = &end
	}
	k.rotated = true

	p.me(t, k)
	p.me(t, next)
	return k
}

func (p *propEnv) me(t *rapid.T, k *propKey) {
	now := p.Clock.Now()
	r := p.send(t, true, "GET", "/v1/me", nil, "X-API-Key", k.raw)
	if p.keyRefused(t, "getCurrentUser", r, k, p.m.meScopes, now) {
		return
	}
	u := k.owner
	if r.Status != 200 || r.JSON["id"] != u.id || r.JSON["username"] != u.username || r.JSON["email"] != u.email || r.JSON["full_name"] != u.fullName {
		t.Fatalf("getCurrentUser with %q's key = %d %s, want 200 with email %q and full name %q", u.username, r.Status, r.Body, u.email, u.fullName)
	}
	p.seen["getCurrentUser 200"]++
	if k.rotated {
		p.seen["getCurrentUser 200 in a rotation's grace"]++
	}
	k.used(now)
}

// keyRefused checks the answer to a request of op made at now with key k,
// for an operation that requires scopes, when the model says the key is
// refused, and reports whether it was.
func (p *propEnv) keyRefused(t *rapid.T, op string, r *response, k *propKey, scopes []string, now time.Time) bool {
	missing := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return slices.Contains(k.scopes, s) })
	switch {
	case k.owner.deleted: // the key went with its account: unknown now
		expectProblem(t, op+" with a deleted account's key", r, 401, "urn:authapi:problem:invalid-api-key")
		p.seen[op+" 401 deleted account"]++
	case k.revoked:
		expectProblem(t, op+" with a revoked key", r, 401, "urn:authapi:problem:invalid-api-key")
		p.seen[op+" 401 revoked"]++
	case !k.activeAt(now):
		expectProblem(t, op+" with an expired key", r, 401, "urn:authapi:problem:api-key-expired")
		p.seen[op+" 401 expired"]++
		if k.rotated {
			p.seen[op+" 401 after a rotation's grace"]++
		}
	case len(missing) > 0:
		expectProblem(t, op+" with a key without "+strings.Join(missing, ", "), r, 403, "urn:authapi:problem:insufficient-scope")
		challenge := r.Header.Get("WWW-Authenticate")
		if !slices.ContainsFunc(missing, func(s string) bool { return strings.Contains(challenge, fmt.Sprintf("scope=%q", s)) }) {
			t.Fatalf("%s with a key without %v: WWW-Authenticate %q names none of them", op, missing, challenge)
		}
		p.seen[op+" 403"]++
	default:
		return false
	}
	return true
}

// verify asks GET /v1/auth/verify about a forwarded request (header pairs)
// with k. The key is judged first, as GET /v1/me judges it, then the path
// (the drawn targets are plainly inside or outside /v1/me), then the scope
// the method needs.
func (p *propEnv) verify(t *rapid.T, k *propKey, forwarded []string) {
	now := p.Clock.Now()
	method, target := forwarded[1], forwarded[len(forwarded)-1]
	r := p.send(t, true, "GET", verifyPath, nil, append(slices.Clone(forwarded), "X-API-Key", k.raw)...)
	need, ok := p.m.verifyScopes[method]
	if !ok {
		need = p.m.verifyScopes["*"]
	}
	path, _, _ := strings.Cut(target, "?")
	inside := path == "/v1/me" || strings.HasPrefix(path, "/v1/me/") && !strings.Contains(path, "..")
	if p.keyRefused(t, "verifyApiKey", r, k, nil, now) {
		return
	}
	if !inside {
		expectProblem(t, "verifyApiKey for "+target, r, 403, "urn:authapi:problem:path-not-allowed")
		p.seen["verifyApiKey 403 path"]++
		return
	}
	if p.keyRefused(t, "verifyApiKey", r, k, need, now) {
		return
	}
	want := []string{k.owner.id, k.owner.username, k.id, strings.Join(k.scopes, " ")}
	got := []string{r.Header.Get("X-Authapi-User-Id"), r.Header.Get("X-Authapi-Username"), r.Header.Get("X-Authapi-Key-Id"), r.Header.Get("X-Authapi-Scopes")}
	if r.Status != 200 || !slices.Equal(got, want) || len(r.Body) != 0 {
		t.Fatalf("verifyApiKey for %s %s with %q's key = %d %v %s, want 200 %v", method, target, k.owner.username, r.Status, got, r.Body, want)
	}
	p.seen["verifyApiKey 200"]++
	k.used(now)
}

// scopesOf reads a JSON list of scopes, sorted: their order is no part of
// the contract.
func scopesOf(v any) []string {
	list, _ := v.([]any)
	out := []string{}
	for _, s := range list {
		out = append(out, fmt.Sprint(s))
	}
	return sorted(out)
}

// timeOf reads a JSON date-time, or null, as formatTime writes it.
func timeOf(t *rapid.T, v any) string {
	if v == nil {
		return "null"
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v))
	if err != nil {
		t.Fatalf("date-time %v: %v", v, err)
	}
	return formatTime(&at)
}

func formatTime(at *time.Time) string {
	if at == nil {
		return "null"
	}
	return at.UTC().Format(time.RFC3339Nano)
}

// requiredScopes reads an operation's x-required-scopes, sorted.
func requiredScopes(tb testing.TB, op *openapi3.Operation) []string {
	tb.Helper()
	var out []string
	list, _ := op.Extensions["x-required-scopes"].([]any)
	for _, s := range list {
		out = append(out, fmt.Sprint(s))
	}
	if len(out) == 0 {
		tb.Fatalf("%s declares no x-required-scopes", op.OperationID)
	}
	return sorted(out)
}

// scopesByMethod reads an operation's x-required-scopes-by-method.
func scopesByMethod(tb testing.TB, op *openapi3.Operation) map[string][]string {
	tb.Helper()
	table, _ := op.Extensions["x-required-scopes-by-method"].(map[string]any)
	out := map[string][]string{}
	for method, list := range table {
		l, _ := list.([]any)
		for _, s := range l {
			out[method] = append(out[method], fmt.Sprint(s))
		}
	}
	if out["*"] == nil {
		tb.Fatalf("%s declares no x-required-scopes-by-method with '*'", op.OperationID)
	}
	return out
}

// TestSpecProperties runs each operation's property, then all of them
// interleaved, with the clock moving in between.
func TestSpecProperties(t *testing.T) {
	propertyFlags(t)
	const maxKeys, maxLifetime, reauth = 4, 365 * 24 * time.Hour, 5 * time.Minute
	tokens := &clock{t: time.Now()}
	e := newEnv(t, options{
		server: func(c *server.Config) {
			c.LoginMaxFailures, c.LoginMaxFailuresPerAddress = 0, 0 // wrong passwords are drawn freely
			c.ReauthMaxAge = reauth
			c.MaxActiveKeys = maxKeys
			c.KeyMaxLifetime, c.KeyDefaultLifetime = maxLifetime, 0
			c.HeaderLimit = 64 << 10 // room for a forwarded target beyond its maxLength
		},
		token: func(c *token.Config) { c.Now = tokens.Now },
	})
	ops := loadOperations(t)
	var allScopes []string
	for _, s := range bodySchema(ops["createApiKey"]).Properties["scopes"].Value.Items.Value.Enum {
		allScopes = append(allScopes, fmt.Sprint(s))
	}
	p := &propEnv{env: e, ops: ops, seen: map[string]int{}, tokens: tokens,
		d: &drawer{tb: t, now: e.Clock.Now, windows: map[string]time.Duration{"expires_at": maxLifetime}},
		m: &propModel{
			users: map[string]*propUser{}, emails: map[string]*propUser{}, keys: map[string]*propKey{},
			maxKey: maxKeys, maxLifetime: maxLifetime, reauth: reauth, allScopes: sorted(allScopes),
			meScopes: requiredScopes(t, ops["getCurrentUser"]), verifyScopes: scopesByMethod(t, ops["verifyApiKey"]),
			writeScopes: requiredScopes(t, ops["updateCurrentUser"]),
		}}
	// Two users with a token and a key each, so that every operation has
	// someone to act as from the start.
	for _, name := range []string{"alice", "bob"} {
		u := e.MustLogin(name)
		k := e.MustCreateKey(u, name+"-key")
		pu := &propUser{id: u.ID, username: name, email: name + "@example.com", password: u.Password, fullName: "Full Name of " + name}
		pu.live = []*propToken{{raw: u.Token, owner: pu, authTime: authTimeOf(t, u.Token)}}
		pu.token = u.Token
		pk := &propKey{id: k.ID.String(), name: k.Name, raw: k.RawKey, scopes: p.m.allScopes, createdAt: k.CreatedAt, owner: pu, seq: len(p.m.keys)}
		pu.keys = []*propKey{pk}
		pu.events = []propEvent{{typ: "login_succeeded"}, {typ: "api_key_created", key: pk}}
		p.m.users[name], p.m.emails[pu.email], p.m.keys[pk.id] = pu, pu, pk
	}

	checks := operationChecks(p)
	for id := range p.ops {
		if _, ok := checks[id]; !ok {
			t.Errorf("operation %s in openapi.yaml has no property test", id)
		}
	}
	ids := make([]string, 0, len(checks))
	for id := range checks {
		if p.ops[id] == nil {
			t.Errorf("property test for %s, which openapi.yaml does not have", id)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				checks[id].broken(rt)
				checks[id].valid(rt)
			})
		})
	}
	// The valid requests of every operation in random order, the clock
	// moving, and credentials ended earlier tried again, so that state
	// builds up: keys created, used, rotated, revoked, expired, capped;
	// users registered, logged in and out, updated, deleted.
	t.Run("interleaved", func(t *testing.T) {
		actions := map[string]func(*rapid.T){"wait": p.wait, "stale credential": p.stale}
		for id, c := range checks {
			actions[id] = c.valid
		}
		rapid.Check(t, func(rt *rapid.T) { rt.Repeat(actions) })
	})

	// The run must have reached every outcome and broken every constraint,
	// or it proved less than it seems to.
	want := []string{
		"registerUser 200", "registerUser 409", "login 200", "login 401",
		"createApiKey 200", "createApiKey 409", "listApiKeys 200",
		"revokeApiKey 204", "revokeApiKey 404",
		"rotateApiKey 200", "rotateApiKey 409", "rotateApiKey 404 unknown", "rotateApiKey 404 foreign",
		"rotateApiKey 404 revoked", "rotateApiKey 404 expired",
		"getCurrentUser 200", "getCurrentUser 200 in a rotation's grace", "getCurrentUser 401 revoked",
		"getCurrentUser 401 expired", "getCurrentUser 401 after a rotation's grace", "getCurrentUser 403",
		"verifyApiKey 200", "verifyApiKey 401 revoked", "verifyApiKey 401 expired", "verifyApiKey 403 path", "verifyApiKey 403",
		"login 401 with a user's wrong password",
		// Account self-service.
		"updateCurrentUser 200", "updateCurrentUser 409", "updateCurrentUser 403",
		"updateCurrentUser 422 empty", "updateCurrentUser 422 only unknown members", "getCurrentUser 200 after an update",
		"changePassword 204", "changePassword 403", "changePassword 422 same password", "an API key after a password change",
		"logout 204", "logout 204 all", "logout 204 leaves the other tokens",
		"a token ended by a password change 401", "a logged-out token 401", "a token ended by logout all 401",
		"deleteAccount 204", "deleteAccount 204 at the reauthentication age", "deleteAccount 401 reauthentication",
		"deleteAccount 401 a nanosecond past the age",
		"a deleted account's token 401", "getCurrentUser 401 deleted account", "registerUser 200 with a deleted account's name",
		"listSecurityEvents 200", "listSecurityEvents 200 with a next page",
	}
	for _, id := range ids {
		op := p.ops[id]
		if schema := bodySchema(op); schema != nil {
			for name, prop := range schema.Properties {
				want = append(want, fmt.Sprintf("%s with a twin of %s", id, name), fmt.Sprintf("%s with a lone twin of %s", id, name))
				for _, b := range p.d.breakages(name, prop.Value, slices.Contains(schema.Required, name), true) {
					want = append(want, fmt.Sprintf("%s with %s breaking %s", id, b.field, b.constraint))
				}
			}
		}
		for _, param := range op.Parameters {
			for _, b := range p.d.breakages(param.Value.Name, param.Value.Schema.Value, false, false) {
				want = append(want, fmt.Sprintf("%s with %s breaking %s", id, param.Value.Name, b.constraint))
			}
		}
	}
	sort.Strings(want)
	for _, w := range want {
		if p.seen[w] == 0 {
			t.Errorf("the property tests never met %q", w)
		}
	}
	t.Logf("%d outcomes and broken constraints, met %d times in all", len(want), sum(p.seen))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
