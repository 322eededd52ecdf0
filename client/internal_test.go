package client

import (
	"reflect"
	"testing"

	"authapi/client/gen"
)

// TestRegisterRequestMatchesSpec keeps the hand-written RegisterRequest in
// step with the one generated from openapi.yaml: same JSON fields.
func TestRegisterRequestMatchesSpec(t *testing.T) {
	if got, want := jsonFields(reflect.TypeFor[RegisterRequest]()), jsonFields(reflect.TypeFor[gen.RegisterRequest]()); !reflect.DeepEqual(got, want) {
		t.Fatalf("RegisterRequest JSON fields = %v, want %v (gen.RegisterRequest)", got, want)
	}
}

// TestUserUpdateMatchesSpec does the same for UpdateCurrentUser's body.
func TestUserUpdateMatchesSpec(t *testing.T) {
	if got, want := jsonFields(reflect.TypeFor[userUpdate]()), jsonFields(reflect.TypeFor[gen.UpdateUserRequest]()); !reflect.DeepEqual(got, want) {
		t.Fatalf("userUpdate JSON fields = %v, want %v (gen.UpdateUserRequest)", got, want)
	}
}

func jsonFields(t reflect.Type) map[string]reflect.Kind {
	out := map[string]reflect.Kind{}
	for i := range t.NumField() {
		f := t.Field(i)
		out[f.Tag.Get("json")] = f.Type.Kind()
	}
	return out
}
