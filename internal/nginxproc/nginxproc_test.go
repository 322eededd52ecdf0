package nginxproc

import (
	"strings"
	"testing"

	"authapi/deploy"
)

// TestConfig: the shipped configuration's addresses are the three this
// package sets, each once, and nothing else of the file changes.
func TestConfig(t *testing.T) {
	a := Addresses{Listen: "127.0.0.9:18000", Authapi: "127.0.0.9:18080", Product: "127.0.0.9:19000"}
	conf, err := Config(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen 127.0.0.9:18000;", "server 127.0.0.9:18080;", "server 127.0.0.9:19000;"} {
		if strings.Count(conf, want) != 1 {
			t.Errorf("Config has %q %d times, want once", want, strings.Count(conf, want))
		}
	}
	shipped, got := strings.Split(deploy.NginxConf, "\n"), strings.Split(conf, "\n")
	if len(shipped) != len(got) {
		t.Fatalf("Config has %d lines, the shipped file %d", len(got), len(shipped))
	}
	changed := 0
	for i := range shipped {
		if shipped[i] != got[i] {
			changed++
			if !strings.Contains(shipped[i], "# SET:") {
				t.Errorf("line %d changed: %q -> %q", i+1, shipped[i], got[i])
			}
		}
	}
	if changed != 3 {
		t.Errorf("%d lines changed, want 3", changed)
	}
}
