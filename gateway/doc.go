// Package gateway holds the tests of authapi behind a real nginx with the
// shipped configuration (deploy/nginx/authapi.conf): build tag gateway,
// make test-gateway.
package gateway
