// polyvirt's web UI: the shell (header, navigation, live regions) and the
// router (#/overview, #/clusters/NAME, #/hosts, #/hosts/NAME, #/vms, #/vms/NAME, #/vms-new).

import {h, replace} from './dom.js';
import * as api from './api.js';
import {setSession, session} from './session.js';
import {close as closeEvents, onState} from './events.js';
import {signIn} from './pages/signin.js';
import {overview} from './pages/overview.js';
import {hosts} from './pages/hosts.js';
import {hostPage} from './pages/host.js';
import {clusterPage} from './pages/cluster.js';
import {vms} from './pages/vms.js';
import {vmPage} from './pages/vm.js';
import {vmForm} from './pages/vmform.js';
import {errorText} from './ui.js';

const pages = [
  {re: /^\/?(overview)?$/, nav: 'overview', title: 'Overview', render: overview},
  {re: /^\/clusters\/([^/]+)$/, nav: 'overview', title: 'Cluster', render: clusterPage},
  {re: /^\/hosts$/, nav: 'hosts', title: 'Hosts', render: hosts},
  {re: /^\/hosts\/([^/]+)$/, nav: 'hosts', title: 'Host', render: hostPage},
  {re: /^\/vms$/, nav: 'vms', title: 'Virtual machines', render: vms},
  {re: /^\/vms-new$/, nav: 'vms', title: 'New virtual machine', render: vmForm},
  {re: /^\/vms\/([^/]+)$/, nav: 'vms', title: 'Virtual machine', render: vmPage},
];

let cleanup = null;
let renderSeq = 0;

// parseHash splits "#/vms?cluster=power" into a path and its parameters.
export function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/overview';
  const [path, query] = raw.split('?');
  return {path, params: new URLSearchParams(query || '')};
}

async function route() {
  const seq = ++renderSeq;
  if (cleanup) {
    try {
      cleanup();
    } catch { /* a page's cleanup must not stop the next one */ }
    cleanup = null;
  }
  const {path, params} = parseHash();
  const main = document.getElementById('main');
  const page = pages.find((p) => p.re.test(path));
  for (const a of document.querySelectorAll('nav.primary a')) {
    if (page && a.dataset.nav === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!page) {
    document.title = 'Not found — polyvirt';
    replace(main, h('h1', null, 'Not found'), h('p', null, 'No such page: ', h('code', null, path)), h('p', null, h('a', {href: '#/overview'}, 'Go to the overview')));
    return;
  }
  const args = path.match(page.re).slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x)));
  document.title = `${page.title} — polyvirt`;
  try {
    const c = await page.render(main, {args, params});
    if (seq !== renderSeq) {
      if (typeof c === 'function') c();
      return;
    }
    cleanup = typeof c === 'function' ? c : null;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return;
    replace(main, h('h1', null, page.title), h('p', {class: 'error', role: 'alert'}, errorText(err)));
  }
  // The new page's heading is where a screen reader continues.
  const h1 = main.querySelector('h1');
  if (h1 && document.activeElement === document.body) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({preventScroll: true});
  }
}

function shell() {
  const s = session();
  const live = h('span', {class: 'live-state', role: 'status', 'aria-live': 'polite'});
  onState((st) => {
    live.textContent = st === 'live' ? 'Events: live' : `Events: ${st}`;
    live.dataset.state = st;
  });
  const signOut = h('button', {type: 'button', class: 'btn btn-quiet', on: {click: doSignOut}}, 'Sign out');
  const header = h('header', {class: 'top'},
    h('a', {class: 'brand', href: '#/overview'}, h('img', {src: '/ui/img/favicon.svg', alt: '', width: 24, height: 24}), 'polyvirt'),
    h('nav', {class: 'primary', 'aria-label': 'Main'},
      h('a', {href: '#/overview', dataset: {nav: 'overview'}}, 'Overview'),
      h('a', {href: '#/hosts', dataset: {nav: 'hosts'}}, 'Hosts'),
      h('a', {href: '#/vms', dataset: {nav: 'vms'}}, 'VMs')),
    h('div', {class: 'who'}, live,
      h('span', {class: 'user'}, h('span', {class: 'visually-hidden'}, 'Signed in as '), s.user.name, ' ', h('span', {class: 'role'}, `(${s.user.role})`)),
      signOut));
  const app = document.getElementById('app');
  replace(app, header,
    h('div', {id: 'status', class: 'notices', role: 'status', 'aria-live': 'polite'}),
    h('div', {id: 'alerts', class: 'notices', role: 'alert', 'aria-live': 'assertive'}),
    h('main', {id: 'main', tabindex: '-1'}));
}

async function doSignOut() {
  try {
    await api.call('DELETE', '/session');
  } catch { /* signed out anyway */ }
  signedOut();
}

function signedOut(err) {
  closeEvents();
  setSession(null);
  api.setCSRF('');
  if (cleanup) {
    try {
      cleanup();
    } catch { /* ignore */ }
    cleanup = null;
  }
  const app = document.getElementById('app');
  replace(app, h('main', {id: 'main', tabindex: '-1'}));
  signIn(document.getElementById('main'), start, err && err.code === 'SESSION_EXPIRED' ? 'Your session ended: sign in again.' : '');
}

// start runs the UI for a signed-in session.
function start(s) {
  setSession(s);
  api.setCSRF(s.csrfToken);
  shell();
  route();
}

async function boot() {
  api.whenSignedOut(signedOut);
  window.addEventListener('hashchange', () => {
    if (session()) route();
  });
  try {
    start(await api.get('/session', {noSignOut: true}));
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) {
      signedOut();
      return;
    }
    replace(document.getElementById('main'), h('h1', null, 'polyvirt'), h('p', {class: 'error', role: 'alert'}, `The engine does not answer: ${errorText(err)}`));
  }
}

boot();
