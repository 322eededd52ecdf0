// Package deploy holds the files shipped for deployments, embedded so that
// the tests and the bench run the very files an operator installs.
package deploy

import _ "embed"

// NginxConf is nginx/authapi.conf: nginx in front of a product's API, with
// authapi as its authentication step.
//
//go:embed nginx/authapi.conf
var NginxConf string
