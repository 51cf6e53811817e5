package api

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestErrorText(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"a rule's verdict", FieldError(CodeDiskBus, "disks[0].bus", "there is no ide bus on ppc64le; use virtio"),
			"DISK_BUS_NOT_SUPPORTED_BY_ARCH: disks[0].bus: there is no ide bus on ppc64le; use virtio"},
		{"no field", NewError(404, CodeNotFound, "no cluster %q", "x"), `NOT_FOUND: no cluster "x"`},
		{"a refusal read from an answer", FromAnswer(400, []byte(`{"error":{"code":"INVALID_ARGUMENT","message":"unknown CPU type","field":"cpuType"}}`)),
			"INVALID_ARGUMENT (cpuType): unknown CPU type"},
		{"an answer that is no error body", FromAnswer(502, []byte("  Bad Gateway\n")), "HTTP_502: Bad Gateway"},
		{"several", Errors{FieldError(CodeNameRequired, "name", "give a name"), FieldError(CodeArchUnknown, "arch", "unknown")},
			"VM_NAME_REQUIRED: name: give a name\nVM_ARCH_UNKNOWN: arch: unknown"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestFromAnswer(t *testing.T) {
	e := FromAnswer(409, []byte(`{"error":{"code":"SCHEDULING_ALL_HOSTS_FILTERED_OUT","message":"no host"},
		"errors":[{"code":"NOT_ENOUGH_MEMORY","message":"too little","field":"host:a"}]}`))
	want := &Error{Status: 409, Code: CodeSchedulingFilteredOut, Message: "no host", Remote: true,
		Details: Errors{{Code: CodeNotEnoughMemory, Message: "too little", Field: "host:a"}}}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ErrorBody{Error: Error{Code: want.Code, Message: want.Message}, Errors: want.Details}, e.Body()); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestErrorMatching(t *testing.T) {
	cause := errors.New("exit status 3")
	err := fmt.Errorf("flash: %w", &Error{Code: CodeFirmwareBusy, Message: "a step runs", Err: cause})
	if !errors.Is(err, &Error{Code: CodeFirmwareBusy}) || errors.Is(err, &Error{Code: CodeFirmwareWrongState}) {
		t.Error("errors.Is by code")
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not unwrapped")
	}
	if CodeOf(err) != CodeFirmwareBusy || CodeOf(cause) != "" {
		t.Errorf("CodeOf: %q, %q", CodeOf(err), CodeOf(cause))
	}
	es := Errors{FieldError(CodeNameRequired, "name", "x"), FieldError(CodeArchUnknown, "arch", "y")}
	if !es.Has(CodeArchUnknown) || es.Has(CodeDiskBus) || !cmp.Equal(es.Codes(), []string{CodeNameRequired, CodeArchUnknown}) {
		t.Errorf("Has/Codes: %v", es.Codes())
	}
}
