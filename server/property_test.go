package server_test

// Property tests against the spec, the Schemathesis idea in Go: requests
// are generated from the schemas in openapi.yaml, valid ones and ones that
// break each constraint, and sent to a real server. Valid requests must be
// accepted (or get the 401/404/409 that the state at that moment demands,
// as a model of that state predicts), invalid ones a 422 problem naming
// exactly the broken field and never echoing its value; every response is
// checked against the spec by the harness's validating transport.
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
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"authapi"
	"authapi/server"
)

// propertyFlags fixes rapid's seed and bounds its work, unless the command
// line chose otherwise.
func propertyFlags(tb testing.TB) {
	tb.Helper()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, value := range map[string]string{
		"rapid.seed":       "20261130",
		"rapid.checks":     "15",
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
// new format gets a generator before it gets used.
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

// objectGen generates JSON objects valid under schema: every required
// property, and each optional one or not.
func objectGen(tb testing.TB, schema *openapi3.Schema) *rapid.Generator[map[string]any] {
	tb.Helper()
	names := make([]string, 0, len(schema.Properties))
	gens := map[string]*rapid.Generator[string]{}
	for name, p := range schema.Properties {
		if p.Value.Type.Is("string") {
			gens[name] = stringGen(tb, p.Value)
		} else {
			tb.Fatalf("no generator for property %q of type %v", name, p.Value.Type)
		}
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

// breakage is one way to make a valid value invalid: it names the field
// and the constraint, and returns the broken value (ok false: remove the
// field).
type breakage struct {
	field, constraint string
	apply             func(t *rapid.T, valid string) (broken any, present bool)
}

// breakages lists every constraint of a string field that can be broken.
func breakages(field string, schema *openapi3.Schema, required, typed bool) []breakage {
	var out []breakage
	if required {
		out = append(out, breakage{field, "required", func(*rapid.T, string) (any, bool) { return nil, false }})
	}
	if typed {
		out = append(out, breakage{field, "type", func(t *rapid.T, _ string) (any, bool) {
			return rapid.SampledFrom([]any{42, 4.5, true, nil, []any{"x"}, map[string]any{"a": "b"}}).Draw(t, "wrong type"), true
		}})
	}
	if schema.MinLength > 0 {
		out = append(out, breakage{field, "minLength", func(_ *rapid.T, v string) (any, bool) {
			return string([]rune(v)[:schema.MinLength-1]), true
		}})
	}
	if schema.MaxLength != nil {
		out = append(out, breakage{field, "maxLength", func(_ *rapid.T, v string) (any, bool) {
			r := []rune(v)
			for uint64(len(r)) <= *schema.MaxLength {
				r = append(r, r[len(r)-1])
			}
			return string(r), true
		}})
	}
	if schema.Pattern != "" {
		re := regexp.MustCompile(schema.Pattern)
		out = append(out, breakage{field, "pattern", func(t *rapid.T, v string) (any, bool) {
			// Replace one character with one the pattern refuses there.
			r := []rune(v)
			i := rapid.IntRange(0, len(r)-1).Draw(t, "position")
			for _, c := range rapid.Permutation([]rune{' ', '!', '\x00', '@', 'é', '\t', '.'}).Draw(t, "replacements") {
				b := slices.Clone(r)
				b[i] = c
				if s := string(b); !re.MatchString(s) {
					return s, true
				}
			}
			t.Skipf("no single-character change breaks %q at %d", v, i)
			return nil, false
		}})
	}
	switch schema.Format {
	case "email":
		out = append(out, breakage{field, "format", func(t *rapid.T, v string) (any, bool) {
			_, domain, _ := strings.Cut(v, "@")
			return strings.Repeat("a", 65) + "@" + domain, true // a local part longer than RFC 5321 allows
		}})
	case "uuid":
		out = append(out, breakage{field, "format", func(t *rapid.T, v string) (any, bool) {
			r := []rune(v)
			i := rapid.SampledFrom([]int{0, 7, 9, 14, 19, 24, 35}).Draw(t, "position")
			r[i] = rapid.SampledFrom([]rune{'g', 'z', '-', '_', ' '}).Draw(t, "character")
			return string(r), true
		}})
	}
	return out
}

// propModel is what the server should hold, as the requests so far made it.
type propModel struct {
	users  map[string]*propUser // by lower-cased username
	emails map[string]bool      // lower-cased
	keys   map[string]*propKey  // by ID
	maxKey int                  // the server's active key cap
}

type propUser struct {
	id, username, email, password, fullName, token string
	keys                                           []*propKey
}

type propKey struct {
	id, name, raw string
	active        bool
	owner         *propUser
	seq           int // creation order: IDs are random, so they cannot order draws
}

func (u *propUser) activeKeys() int {
	n := 0
	for _, k := range u.keys {
		if k.active {
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

// propEnv is a server, the model of its state, and the spec's operations.
type propEnv struct {
	*env
	m    *propModel
	ops  map[string]*openapi3.Operation
	seen map[string]int // outcomes met: "operation outcome"
}

// send makes one request; onSpec says whether it should satisfy the spec
// (the transport then checks it does). A violation the transport reports
// fails the property too, so that rapid shrinks it.
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
		for _, b := range breakages(name, prop, slices.Contains(schema.Required, name), true) {
			body := map[string]any{}
			for k, v := range valid {
				body[k] = v
			}
			v, _ := valid[name].(string)
			if v == "" {
				v = stringGen(p.t, prop).Draw(t, name+" to break")
			}
			broken, present := b.apply(t, v)
			if present {
				body[name] = broken
			} else {
				delete(body, name)
			}
			what := fmt.Sprintf("%s with %s breaking %s", opID, name, b.constraint)
			r := p.send(t, false, method, path, body, header...)
			expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", name)
			expectNoEcho(t, what, r, broken)
			p.seen[what]++
		}
	}
}

// propOp is one operation's property: broken sends requests that break
// each constraint of its inputs (and lack its credential), valid sends one
// valid request and checks the outcome against the model.
type propOp struct {
	broken, valid func(*rapid.T)
}

func operationChecks(p *propEnv) map[string]propOp {
	body := func(t *rapid.T, opID string) map[string]any {
		return objectGen(p.t, bodySchema(p.ops[opID])).Draw(t, opID+" body")
	}
	user := func(t *rapid.T) *propUser { return rapid.SampledFrom(p.m.loggedIn()).Draw(t, "user") }
	return map[string]propOp{
		"registerUser": {
			broken: func(t *rapid.T) {
				p.checkBrokenBodies(t, "registerUser", "POST", "/v1/auth/register", body(t, "registerUser"))
			},
			valid: func(t *rapid.T) { p.register(t, body(t, "registerUser")) },
		},
		"login": {
			broken: func(t *rapid.T) {
				p.checkBrokenBodies(t, "login", "POST", "/v1/auth/login", body(t, "login"))
			},
			valid: func(t *rapid.T) {
				b := body(t, "login")
				if rapid.Bool().Draw(t, "as a known user") {
					u := rapid.SampledFrom(p.m.sortedUsers()).Draw(t, "known user")
					b = map[string]any{"username": recase(t, u.username), "password": u.password}
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
				r := p.send(t, true, "GET", "/v1/auth/api-keys", nil)
				expectProblem(t, "listApiKeys without a token", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) { p.listKeys(t, user(t)) },
		},
		"revokeApiKey": {
			broken: func(t *rapid.T) {
				u := user(t)
				schema := pathParam(p.ops["revokeApiKey"], "key_id")
				valid := stringGen(p.t, schema).Draw(t, "key_id")
				for _, b := range breakages("key_id", schema, false, false) {
					broken, _ := b.apply(t, valid)
					what := "revokeApiKey with key_id breaking " + b.constraint
					r := p.send(t, false, "DELETE", "/v1/auth/api-keys/"+pathEscape(broken.(string)), nil, "Authorization", "Bearer "+u.token)
					expectProblem(t, what, r, http.StatusUnprocessableEntity, "urn:authapi:problem:validation-failed", "key_id")
					expectNoEcho(t, what, r, broken)
					p.seen[what]++
				}
				r := p.send(t, true, "DELETE", "/v1/auth/api-keys/"+valid, nil)
				expectProblem(t, "revokeApiKey without a token", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) {
				id := stringGen(p.t, pathParam(p.ops["revokeApiKey"], "key_id")).Draw(t, "key_id")
				if rapid.Bool().Draw(t, "a known key") {
					id = rapid.SampledFrom(p.m.allKeys()).Draw(t, "known key").id
				}
				p.revoke(t, user(t), id)
			},
		},
		"getCurrentUser": {
			broken: func(t *rapid.T) {
				r := p.send(t, true, "GET", "/v1/me", nil)
				expectProblem(t, "getCurrentUser without a key", r, 401, "urn:authapi:problem:unauthenticated")
				r = p.send(t, true, "GET", "/v1/me", nil, "Authorization", "Bearer "+user(t).token)
				expectProblem(t, "getCurrentUser with a JWT", r, 401, "urn:authapi:problem:unauthenticated")
			},
			valid: func(t *rapid.T) { p.me(t, rapid.SampledFrom(p.m.allKeys()).Draw(t, "key")) },
		},
	}
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

func (m *propModel) sortedUsers() []*propUser {
	out := make([]*propUser, 0, len(m.users))
	for _, u := range m.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].username < out[j].username })
	return out
}

// The valid requests, one per operation, each checked against the model.

func (p *propEnv) register(t *rapid.T, body map[string]any) {
	u := &propUser{username: body["username"].(string), email: body["email"].(string), password: body["password"].(string), fullName: body["full_name"].(string)}
	var taken []string
	if p.m.users[strings.ToLower(u.username)] != nil {
		taken = append(taken, "username")
	}
	if p.m.emails[strings.ToLower(u.email)] {
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
	p.m.emails[strings.ToLower(u.email)] = true
}

func (p *propEnv) login(t *rapid.T, body map[string]any) {
	name, _ := body["username"].(string)
	u := p.m.users[strings.ToLower(name)]
	r := p.send(t, true, "POST", "/v1/auth/login", body)
	if u == nil || u.password != body["password"] {
		expectProblem(t, "login with wrong credentials", r, 401, "urn:authapi:problem:invalid-credentials")
		p.seen["login 401"]++
		return
	}
	tok, _ := r.JSON["access_token"].(string)
	if r.Status != 200 || tok == "" || r.JSON["token_type"] != "bearer" {
		t.Fatalf("login as %q = %d %s, want 200 with a bearer token", u.username, r.Status, r.Body)
	}
	p.seen["login 200"]++
	u.token = tok
}

func (p *propEnv) createKey(t *rapid.T, u *propUser, body map[string]any) {
	r := p.send(t, true, "POST", "/v1/auth/api-keys", body, "Authorization", "Bearer "+u.token)
	if u.activeKeys() >= p.m.maxKey {
		expectProblem(t, "createApiKey at the cap", r, 409, "urn:authapi:problem:api-key-limit")
		p.seen["createApiKey 409"]++
		return
	}
	raw, _ := r.JSON["raw_key"].(string)
	if r.Status != 200 || r.JSON["name"] != body["name"] || r.JSON["is_active"] != true || len(raw) < 8 || r.JSON["prefix"] != raw[:8] {
		t.Fatalf("createApiKey(%v) = %d %s, want 200 with the name, an active key and its prefix", body, r.Status, r.Body)
	}
	p.seen["createApiKey 200"]++
	k := &propKey{id: r.JSON["id"].(string), name: body["name"].(string), raw: raw, active: true, owner: u, seq: len(p.m.keys)}
	u.keys = append(u.keys, k)
	p.m.keys[k.id] = k
}

func (p *propEnv) listKeys(t *rapid.T, u *propUser) {
	r := p.send(t, true, "GET", "/v1/auth/api-keys", nil, "Authorization", "Bearer "+u.token)
	var listed []map[string]any
	if r.Status != 200 || json.Unmarshal(r.Body, &listed) != nil {
		t.Fatalf("listApiKeys as %q = %d %s, want 200", u.username, r.Status, r.Body)
	}
	var got, want []string
	for _, k := range listed {
		got = append(got, fmt.Sprintf("%v %v %v", k["id"], k["name"], k["is_active"]))
	}
	for _, k := range u.keys {
		want = append(want, fmt.Sprintf("%v %v %v", k.id, k.name, k.active))
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("listApiKeys as %q = %v, want %v", u.username, got, want)
	}
	p.seen["listApiKeys 200"]++
}

func (p *propEnv) revoke(t *rapid.T, u *propUser, id string) {
	r := p.send(t, true, "DELETE", "/v1/auth/api-keys/"+id, nil, "Authorization", "Bearer "+u.token)
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
	k.active = false
}

func (p *propEnv) me(t *rapid.T, k *propKey) {
	r := p.send(t, true, "GET", "/v1/me", nil, "X-API-Key", k.raw)
	if !k.active {
		expectProblem(t, "getCurrentUser with a revoked key", r, 401, "urn:authapi:problem:invalid-api-key")
		p.seen["getCurrentUser 401"]++
		return
	}
	if r.Status != 200 || r.JSON["id"] != k.owner.id || r.JSON["username"] != k.owner.username {
		t.Fatalf("getCurrentUser with %q's key = %d %s", k.owner.username, r.Status, r.Body)
	}
	p.seen["getCurrentUser 200"]++
}

// TestSpecProperties runs each operation's property, then all of them
// interleaved.
func TestSpecProperties(t *testing.T) {
	propertyFlags(t)
	e := newEnv(t, options{server: func(c *server.Config) {
		c.LoginMaxFailures = 0 // wrong passwords are drawn freely
		c.MaxActiveKeys = 4    // low, so that the cap's 409 comes up
	}})
	p := &propEnv{env: e, ops: loadOperations(t), seen: map[string]int{}, m: &propModel{
		users: map[string]*propUser{}, emails: map[string]bool{}, keys: map[string]*propKey{}, maxKey: 4,
	}}
	// Two users with a token and a key each, so that every operation has
	// someone to act as from the start.
	for _, name := range []string{"alice", "bob"} {
		u := e.MustLogin(name)
		k := e.MustCreateKey(u, name+"-key")
		pu := &propUser{id: u.ID, username: name, email: name + "@example.com", password: u.Password, fullName: "Full Name of " + name, token: u.Token}
		pk := &propKey{id: k.ID.String(), name: k.Name, raw: k.RawKey, active: true, owner: pu, seq: len(p.m.keys)}
		pu.keys = []*propKey{pk}
		p.m.users[name], p.m.emails[pu.email], p.m.keys[pk.id] = pu, true, pk
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
	// The valid requests of every operation in random order, so that state
	// builds up: keys created, revoked, capped; users registered, logged in.
	t.Run("interleaved", func(t *testing.T) {
		actions := map[string]func(*rapid.T){}
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
		"revokeApiKey 204", "revokeApiKey 404", "getCurrentUser 200", "getCurrentUser 401",
	}
	for _, id := range ids {
		op := p.ops[id]
		if schema := bodySchema(op); schema != nil {
			for name, prop := range schema.Properties {
				for _, b := range breakages(name, prop.Value, slices.Contains(schema.Required, name), true) {
					want = append(want, fmt.Sprintf("%s with %s breaking %s", id, name, b.constraint))
				}
			}
		}
		for _, param := range op.Parameters {
			for _, b := range breakages(param.Value.Name, param.Value.Schema.Value, false, false) {
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
