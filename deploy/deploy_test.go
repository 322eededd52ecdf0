package deploy_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"authapi"
	"authapi/deploy"
)

// TestNginxCarriesEveryAnswerHeader: every X-Authapi-* header of the
// verify endpoint's answer, as openapi.yaml declares them, is copied to the
// product by the shipped nginx configuration, and cleared on requests that
// do not go through the check, so that a header added to the spec cannot
// be forgotten here (or, worse, reach the product as the client sent it).
func TestNginxCarriesEveryAnswerHeader(t *testing.T) {
	spec, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ok := spec.Paths.Find("/v1/auth/verify").Get.Responses.Status(200).Value
	var names []string
	for name := range ok.Headers {
		if strings.HasPrefix(name, "X-Authapi-") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatal("the verify endpoint's 200 declares no X-Authapi-* header")
	}
	conf := deploy.NginxConf
	for _, name := range names {
		v := "authapi_" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "X-Authapi-")), "-", "_")
		set := regexp.MustCompile(`(?m)^\s*auth_request_set \$` + v + ` \$upstream_http_` + strings.ReplaceAll(strings.ToLower(name), "-", "_") + `;$`)
		pass := regexp.MustCompile(`(?m)^\s*proxy_set_header ` + regexp.QuoteMeta(name) + ` \$` + v + `;$`)
		clear := regexp.MustCompile(`(?m)^\s*proxy_set_header ` + regexp.QuoteMeta(name) + ` "";$`)
		if !set.MatchString(conf) || !pass.MatchString(conf) || !clear.MatchString(conf) {
			t.Errorf("nginx/authapi.conf does not copy %s from the answer (auth_request_set $%s), pass it on, and clear it elsewhere", name, v)
		}
	}
}
