package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"authapi/client"
)

// The reference flow: register, log in, create an API key, call /v1/me
// with it, revoke it.
func Example() {
	baseURL, stop := exampleServer() // your server: "http://127.0.0.1:8080"
	defer stop()
	ctx := context.Background()

	c, err := client.New(baseURL)
	if err != nil {
		log.Fatal(err)
	}
	user, err := c.RegisterUser(ctx, client.RegisterRequest{
		Username: "hershel", Email: "hershel@example.com",
		Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", user.Username)

	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		log.Fatal(err)
	}
	c = c.UsingToken(tok.AccessToken)

	key, err := c.CreateAPIKey(ctx, "my-app-key")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", key.Name, strings.HasPrefix(key.RawKey, key.Prefix))

	me, err := c.UsingAPIKey(key.RawKey).GetCurrentUser(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("me:", me.FullName)

	if err := c.RevokeAPIKey(ctx, key.ID); err != nil {
		log.Fatal(err)
	}
	_, err = c.UsingAPIKey(key.RawKey).GetCurrentUser(ctx)
	var p *client.Problem
	if errors.As(err, &p) {
		fmt.Println("after revoking:", p.Status, p.Type)
	}
	// Output:
	// registered hershel
	// created my-app-key true
	// me: Hershel Moshkovitz
	// after revoking: 401 urn:authapi:problem:invalid-api-key
}

// Keys can be limited and renewed: this one may only read /v1/me and
// expires in 90 days. Rotating it gives a new key with the same name and
// scopes; the old one keeps working for the hour given, so that
// deployments can switch over.
func ExampleClient_RotateAPIKey() {
	baseURL, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(baseURL)
	if _, err := c.RegisterUser(ctx, client.RegisterRequest{
		Username: "hershel", Email: "hershel@example.com",
		Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
	}); err != nil {
		log.Fatal(err)
	}
	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		log.Fatal(err)
	}
	c = c.UsingToken(tok.AccessToken)

	old, err := c.CreateAPIKey(ctx, "deploy",
		client.WithScopes(client.ScopeMeRead), client.WithExpiry(time.Now().Add(90*24*time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	next, err := c.RotateAPIKey(ctx, old.ID, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new key:", next.Name, next.Scopes)
	for _, key := range []struct{ name, raw string }{{"old", old.RawKey}, {"new", next.RawKey}} {
		_, err := c.UsingAPIKey(key.raw).GetCurrentUser(ctx)
		fmt.Println(key.name, "key works:", err == nil)
	}
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == old.ID {
			fmt.Println("old key ends within the hour:", time.Until(*k.ExpiresAt) <= time.Hour)
		}
	}
	// Output:
	// new key: deploy [me:read]
	// old key works: true
	// new key works: true
	// old key ends within the hour: true
}

// Validation failures list every invalid field.
func ExampleProblem() {
	baseURL, stop := exampleServer()
	defer stop()

	c, _ := client.New(baseURL)
	_, err := c.RegisterUser(context.Background(), client.RegisterRequest{
		Username: "hi", Email: "not an address", Password: "secureP@ss123", FullName: "Hershel",
	})
	var p *client.Problem
	if errors.As(err, &p) && p.Type == client.TypeValidationFailed {
		for _, f := range p.Errors {
			fmt.Printf("%s: %s\n", f.Field, f.Message)
		}
	}
	// Output:
	// email: must be a valid email address
	// username: must be at least 3 characters
}

// A service that authapi's keys protect without a gateway in front: the
// Verifier asks authapi about each request's key, method and path, and
// the handler reads who the request acts as. This key may only read.
func ExampleVerifier_Middleware() {
	baseURL, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(baseURL)
	if _, err := c.RegisterUser(ctx, client.RegisterRequest{
		Username: "hershel", Email: "hershel@example.com",
		Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
	}); err != nil {
		log.Fatal(err)
	}
	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		log.Fatal(err)
	}
	key, err := c.UsingToken(tok.AccessToken).CreateAPIKey(ctx, "reader", client.WithScopes(client.ScopeMeRead))
	if err != nil {
		log.Fatal(err)
	}

	v, err := client.NewVerifier(baseURL)
	if err != nil {
		log.Fatal(err)
	}
	things := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := client.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "%s's things", p.Username)
	})
	// In the service: http.ListenAndServe(addr, v.Middleware(mux))
	svc := httptest.NewServer(v.Middleware(things))
	defer svc.Close()

	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, svc.URL+"/v1/me/things", nil)
		req.Header.Set("X-API-Key", key.RawKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var p client.Problem
			json.Unmarshal(body, &p)
			body = []byte(p.Title)
		}
		fmt.Println(method, resp.StatusCode, string(body))
	}
	// Output:
	// GET 200 hershel's things
	// POST 403 Insufficient scope
}

// A password change ends every token issued before it, this one's too:
// log in again with the new password.
func ExampleClient_ChangePassword() {
	baseURL, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(baseURL)
	if _, err := c.RegisterUser(ctx, client.RegisterRequest{
		Username: "hershel", Email: "hershel@example.com",
		Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
	}); err != nil {
		log.Fatal(err)
	}
	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		log.Fatal(err)
	}
	c = c.UsingToken(tok.AccessToken)

	err = c.ChangePassword(ctx, "not my password", "an0ther-Secure-passw0rd")
	var p *client.Problem
	if errors.As(err, &p) {
		fmt.Println("wrong current password:", p.Status, p.Type)
	}
	if err := c.ChangePassword(ctx, "secureP@ss123", "an0ther-Secure-passw0rd"); err != nil {
		log.Fatal(err)
	}
	_, err = c.ListAPIKeys(ctx)
	if errors.As(err, &p) {
		fmt.Println("the old token:", p.Status, p.Type)
	}
	tok, err = c.Login(ctx, "hershel", "an0ther-Secure-passw0rd")
	if err != nil {
		log.Fatal(err)
	}
	c = c.UsingToken(tok.AccessToken)
	_, err = c.ListAPIKeys(ctx)
	fmt.Println("a new login works:", err == nil)
	// Output:
	// wrong current password: 403 urn:authapi:problem:wrong-password
	// the old token: 401 urn:authapi:problem:invalid-token
	// a new login works: true
}

// The security log, newest first; the iterator fetches the pages as the
// loop goes.
func ExampleClient_SecurityEvents() {
	baseURL, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(baseURL)
	if _, err := c.RegisterUser(ctx, client.RegisterRequest{
		Username: "hershel", Email: "hershel@example.com",
		Password: "secureP@ss123", FullName: "Hershel Moshkovitz",
	}); err != nil {
		log.Fatal(err)
	}
	tok, err := c.Login(ctx, "hershel", "secureP@ss123")
	if err != nil {
		log.Fatal(err)
	}
	c = c.UsingToken(tok.AccessToken)
	key, err := c.CreateAPIKey(ctx, "my-app-key")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.UsingAPIKey(key.RawKey).UpdateCurrentUser(ctx, client.WithFullName("Hershel M.")); err != nil {
		log.Fatal(err)
	}

	for e, err := range c.SecurityEvents(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Type, e.KeyPrefix != nil && *e.KeyPrefix == key.Prefix)
	}
	// Output:
	// profile_updated false
	// api_key_created true
	// login_succeeded false
}
