package apikey_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"authapi/apikey"
)

// documentedPattern reads the key expression the README gives secret
// scanners.
func documentedPattern(t *testing.T) *regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- key-regex -->")
	expr, _, ok2 := strings.Cut(rest, "<!-- /key-regex -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no key-regex block")
	}
	return regexp.MustCompile(strings.Trim(strings.TrimSpace(expr), "`"))
}

func TestDocumentedPatternMatchesEveryKey(t *testing.T) {
	re := documentedPattern(t)
	for i := 0; i < 2000; i++ {
		k := apikey.MustGenerate()
		for _, text := range []string{k, "X-API-Key: " + k, `"raw_key":"` + k + `"`, "export KEY=" + k + "\n"} {
			if got := re.FindString(text); got != k {
				t.Fatalf("the README's expression finds %q in %q, want the key %q", got, text, k)
			}
		}
	}
}

func TestDocumentedPatternRejectsLookalikes(t *testing.T) {
	re := documentedPattern(t)
	k := apikey.MustGenerate()
	for _, text := range []string{
		k[:len(k)-1],          // one short
		k + "Z",               // one long
		"RST_" + k[4:],        // another prefix
		"xrst_" + k[4:],       // inside a longer word
		k[:20] + "-" + k[21:], // a character outside the alphabet
	} {
		if m := re.FindString(text); m != "" {
			t.Errorf("the README's expression finds %q in %q, want nothing", m, text)
		}
	}
}
