// The engine's live events (GET /api/v1/events/stream), one EventSource
// shared by the pages that listen.

const listeners = new Set();
let source = null;
let state = 'closed';
const stateListeners = new Set();

function setState(s) {
  state = s;
  for (const fn of stateListeners) fn(s);
}

function open() {
  if (source) return;
  source = new EventSource('/api/v1/events/stream');
  setState('connecting');
  source.addEventListener('open', () => setState('live'));
  source.addEventListener('error', () => setState(source && source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
  source.addEventListener('event', (m) => {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    for (const fn of listeners) fn(ev);
  });
}

// listen calls fn with each new event until the returned function is
// called.
export function listen(fn) {
  listeners.add(fn);
  open();
  return () => listeners.delete(fn);
}

// onState calls fn with the stream's state (connecting, live,
// reconnecting, closed).
export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

export function close() {
  if (source) source.close();
  source = null;
  setState('closed');
}
