package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"polyvirt/internal/client"
)

// lostConnection words a request the engine received and did not answer
// (client.ConnectionLostError: the engine went away, or no answer came in
// time) for a person: what may have happened, and the command that tells.
// Other errors are returned as they are.
func lostConnection(err error) error {
	var le *client.ConnectionLostError
	if !errors.As(err, &le) {
		return err
	}
	return errors.New(lostMessage(le))
}

// lostMessage is the CLI's wording of a lost connection, the same for
// every command.
func lostMessage(le *client.ConnectionLostError) string {
	cause := fmt.Sprintf("the connection was lost: %v", le.Err)
	gone := fmt.Sprintf("the engine at %s went away before it answered", le.Engine)
	if le.TimedOut {
		cause = fmt.Sprintf("%v", le.Err)
		gone = fmt.Sprintf("the engine at %s did not answer within %s", le.Engine, le.After)
	}
	req := fmt.Sprintf("%s /api/v1%s", le.Method, le.Path)
	if le.Method == http.MethodGet || le.Method == http.MethodHead {
		return fmt.Sprintf("%s (%s: %s); reading changes nothing: try again", gone, req, cause)
	}
	what, check := lostAction(le.Method, le.Path)
	may := "may have happened"
	if le.TimedOut {
		may = "may have happened or still happen"
	}
	return fmt.Sprintf("%s (%s: %s): %s %s; `%s` tells", gone, req, cause, what, may, check)
}

// lostAction names what a request asked (the start of VM web1) and the
// command that shows whether it happened.
func lostAction(method, path string) (what, check string) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	var seg []string
	for _, s := range strings.Split(strings.Trim(path, "/"), "/") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		seg = append(seg, s)
	}
	kinds := map[string]string{"vms": "vm", "hosts": "host", "clusters": "cluster", "users": "user"}
	kind, ok := kinds[seg[0]]
	if !ok {
		return fmt.Sprintf("what %s %s asked", method, path), "polyvirt events"
	}
	noun := map[string]string{"vm": "VM", "host": "host", "cluster": "cluster", "user": "user"}[kind]
	list := "polyvirt " + kind + " list"
	show := list
	if len(seg) >= 2 && kind != "user" {
		show = "polyvirt " + kind + " show " + seg[1]
	}
	switch {
	case len(seg) == 1 && kind == "host":
		return "the addition of the host", list
	case len(seg) == 1:
		return fmt.Sprintf("the creation of the %s", noun), list
	case len(seg) == 2 && method == http.MethodDelete:
		return fmt.Sprintf("the removal of %s %s", noun, seg[1]), list
	case len(seg) == 2:
		return fmt.Sprintf("the change of %s %s", noun, seg[1]), show
	case kind == "host" && seg[2] == "firmware":
		step := "upload"
		if len(seg) > 3 && seg[3] != "image" {
			step = seg[3]
		}
		return fmt.Sprintf("the firmware %s of host %s", step, seg[1]), "polyvirt host firmware show " + seg[1]
	case kind == "user":
		return fmt.Sprintf("the new token of user %s", seg[1]), list
	}
	verb := seg[2]
	if n, ok := actionNouns[verb]; ok {
		verb = n
	}
	return fmt.Sprintf("the %s of %s %s", verb, noun, seg[1]), show
}

// actionNouns name the actions whose path segment is not a noun.
var actionNouns = map[string]string{"destroy": "power-off", "activate": "activation",
	"maintenance": "switch to Maintenance", "join-token": "new join token"}
