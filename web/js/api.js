// The engine's REST API, as the signed-in browser calls it: the session
// cookie goes with every request (same origin), the session's CSRF token
// with every request that changes something.

let csrf = '';
let onSignedOut = () => {};

// ApiError is an error answer: the HTTP status, its code, message and
// field, and every violation when there are several.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || `HTTP_${status}`;
    this.field = e.field || '';
    this.errors = (body && body.errors) || [];
  }

  // all is every violation (the one error when there is no list).
  all() {
    return this.errors.length ? this.errors : [{code: this.code, message: this.message, field: this.field}];
  }
}

export function setCSRF(token) {
  csrf = token || '';
}

// whenSignedOut registers what to do when the session ends.
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

// call sends a request to /api/v1; body is sent as JSON (or as it is for
// a Blob/File). It answers the decoded JSON (null for no content).
export async function call(method, path, body, opts = {}) {
  const headers = {Accept: 'application/json'};
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const resp = await fetch(`/api/v1${path}`, {method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal: opts.signal});
  const type = resp.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await resp.json().catch(() => null) : null;
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    if (resp.status === 401 && !opts.noSignOut) onSignedOut(err);
    throw err;
  }
  return data;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body, opts);

// hosts reads every host a query selects ('cluster=a&status=Up', or ''),
// ordered by name: GET /hosts answers pages of at most 1,000 hosts, each
// with the continue token of the next.
export async function hosts(query = '', opts) {
  const out = [];
  let cont = '';
  for (;;) {
    const q = new URLSearchParams(query);
    q.set('limit', '1000');
    if (cont) q.set('continue', cont);
    const page = await get(`/hosts?${q}`, opts);
    out.push(...page.hosts);
    if (!page.continue || page.continue === cont) return out;
    cont = page.continue;
  }
}

// esc escapes one path segment.
export const esc = encodeURIComponent;
