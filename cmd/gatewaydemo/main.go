// Command gatewaydemo runs the shipped gateway configuration
// (deploy/nginx/authapi.conf) in front of a demo product that answers each
// request with what it received, so that the README's walk-through can end
// with a key calling a product endpoint through nginx (`make
// run-gateway`). It needs nginx (apt-get install nginx) and an authapi
// (make run).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"authapi/internal/nginxproc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaydemo:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8000", "where the gateway listens")
	authapi := flag.String("authapi", "127.0.0.1:8080", "authapi's address")
	flag.Parse()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The demo product: what it received, as JSON.
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"product_saw": map[string]any{"method": r.Method, "uri": r.RequestURI, "headers": r.Header}})
	}))
	conf, err := nginxproc.Config(nginxproc.Addresses{Listen: *listen, Authapi: *authapi, Product: ln.Addr().String()})
	if err != nil {
		return err
	}
	p, err := nginxproc.Start(conf, []string{*listen}, nginxproc.Options{})
	if err != nil {
		return err
	}
	defer p.Remove()
	defer p.Stop()
	fmt.Printf("gatewaydemo: nginx with deploy/nginx/authapi.conf on http://%s, in front of authapi at %s and a demo product; Ctrl-C stops it\n", *listen, *authapi)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return nil
}
