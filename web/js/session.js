// The signed-in user and what it may do. The UI reads the routes the
// engine lets this user call (GET /api/v1/session) instead of knowing role
// names: a control whose route is not allowed is disabled (and the engine
// refuses it anyway).

let current = null;

export function setSession(s) {
  current = s;
}

export function session() {
  return current;
}

// can tells whether the user may call a route: can('POST', '/vms/{vm}/start').
export function can(method, pattern) {
  return !!current && current.allowed.includes(`${method} ${pattern}`);
}

// why is the text beside a disabled control.
export function why(method, pattern) {
  return can(method, pattern) ? '' : `Your role (${current ? current.user.role : 'none'}) may not do this.`;
}
