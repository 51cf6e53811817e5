// The console page (/ui/console.html#vm=NAME&type=vnc|serial): a VM's
// graphical console (noVNC, over the engine's websocket opened with a
// one-use console ticket) or its serial console (xterm.js, over the
// engine's console websocket). Its own page: the console code is not part
// of the first page, and xterm.js writes its styles inline.

import {h, replace} from '../dom.js';
import * as api from '../api.js';
import {setSession, can} from '../session.js';
import {badge, errorText} from '../ui.js';

function params() {
  return new URLSearchParams(window.location.hash.replace(/^#/, ''));
}

async function boot() {
  const main = document.getElementById('main');
  const p = params();
  const name = p.get('vm') || '';
  const type = p.get('type') === 'serial' ? 'serial' : 'vnc';
  // The console's code loads while the session and the VM are read; noVNC's
  // modules all at once (scripts/build-ui.sh lists them).
  if (type === 'vnc') {
    import('../../vendor/novnc-modules.js').then((m) => {
      for (const href of m.default) document.head.append(h('link', {rel: 'modulepreload', href}));
    }).catch(() => {});
  }
  const code = type === 'vnc' ? import('./vnc.js') : import('./serial.js');
  code.catch(() => {});
  // The session and the VM read at once; the graphical console's ticket
  // asked for as soon as the session's CSRF token is known (the VM's
  // document meanwhile).
  const vmP = api.get(`/vms/${api.esc(name)}`, {noSignOut: true});
  vmP.catch(() => {});
  let s;
  try {
    s = await api.get('/session', {noSignOut: true});
  } catch (e) {
    replace(main, h('h1', null, 'Console'), h('p', {class: 'error', role: 'alert'},
      e instanceof api.ApiError && e.status === 401 ? 'You are not signed in. ' : errorText(e), h('a', {href: '/'}, 'Sign in')));
    return;
  }
  setSession(s);
  api.setCSRF(s.csrfToken);
  const ticket = type === 'vnc' && can('POST', '/vms/{vm}/console-ticket') ? api.post(`/vms/${api.esc(name)}/console-ticket`, {type: 'vnc'}) : null;
  if (ticket) ticket.catch(() => {});
  let v;
  try {
    v = await vmP;
  } catch (e) {
    replace(main, h('h1', null, `Console of ${name}`), h('p', {class: 'error', role: 'alert'}, errorText(e)));
    return;
  }
  document.title = `${type === 'vnc' ? 'Graphical' : 'Serial'} console of ${v.name} — polyvirt`;
  const status = h('p', {class: 'console-status', id: 'console-status', role: 'status', 'aria-live': 'polite'}, 'Connecting…');
  const tools = h('div', {class: 'console-tools', role: 'toolbar', 'aria-label': 'Console tools'});
  const screen = h('div', {id: 'screen', class: `screen screen-${type}`, tabindex: '-1'});
  const other = type === 'vnc' ? 'serial' : 'vnc';
  replace(main,
    h('header', {class: 'console-head'},
      h('a', {href: `/#/vms/${encodeURIComponent(v.name)}`}, `← ${v.name}`),
      h('h1', null, `${type === 'vnc' ? 'Graphical' : 'Serial'} console of ${v.name}`, ' ', badge(v.state)),
      h('a', {href: `#vm=${encodeURIComponent(v.name)}&type=${other}`, class: 'btn btn-link'},
        other === 'vnc' ? 'Graphical console' : 'Serial console'),
      status),
    tools, screen);
  const mod = await code;
  mod.open({vm: v, screen, status, tools, ticket, canType: can('POST', '/vms/{vm}/start')});
}

// Another console of the page (its address's fragment changed): open it.
window.addEventListener('hashchange', () => window.location.reload());

boot();
