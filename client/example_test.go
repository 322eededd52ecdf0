package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

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
