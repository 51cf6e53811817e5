// The buttons of a VM: start, stop (the guest powers off), power off,
// delete, and its consoles.

import {h} from '../dom.js';
import * as api from '../api.js';
import {actionButton, notice} from '../ui.js';
import {can} from '../session.js';

const RUNNING = new Set(['Up', 'Paused', 'PoweringUp', 'PoweringDown', 'RebootInProgress', 'WaitForLaunch', 'Unknown', 'NotResponding', 'MigratingFrom', 'MigratingTo']);

export function vmButtons(v, done, opts = {}) {
  const p = `/vms/${api.esc(v.name)}`;
  const running = RUNNING.has(v.state);
  const label = (x) => (opts.compact ? `${x} ${v.name}` : null);
  const report = (res) => {
    if (res && res.message) notice(res.message);
    done(res);
  };
  return h('div', {class: 'actions', role: 'group', 'aria-label': `Actions on ${v.name}`},
    actionButton('Start', 'POST', '/vms/{vm}/start', () => api.post(`${p}/start`, {}), {disabled: running, done: report, ariaLabel: label('Start')}),
    actionButton('Stop', 'POST', '/vms/{vm}/shutdown', () => api.post(`${p}/shutdown`, {}), {disabled: v.state !== 'Up', done: report, ariaLabel: label('Stop'), title: 'Ask the guest to power off'}),
    actionButton('Power off', 'POST', '/vms/{vm}/destroy', () => api.post(`${p}/destroy`, {}), {disabled: !running, done: report, ariaLabel: label('Power off'),
      confirm: `Power ${v.name} off at once (as pulling its plug)?`}),
    actionButton('Delete', 'DELETE', '/vms/{vm}', () => api.call('DELETE', `${p}${running ? '?force=true' : ''}`), {class: 'btn btn-danger', done: () => done({deleted: true}),
      ariaLabel: label('Delete'), confirm: `Delete ${v.name}${running ? ' (it runs: it is powered off first)' : ''}? Its definition is gone.`}),
    consoleLinks(v, opts));
}

// consoleLinks open the console page: graphical (a console ticket; the
// VM runs and has a display) and serial.
export function consoleLinks(v, opts = {}) {
  const running = v.state === 'Up' || v.state === 'Paused';
  const graphical = can('POST', '/vms/{vm}/console-ticket');
  const base = `/ui/console.html#vm=${encodeURIComponent(v.name)}`;
  const label = (x) => (opts.compact ? `${x} of ${v.name}` : null);
  return h('span', {class: 'console-links'},
    running && graphical ? h('a', {class: 'btn btn-link', href: `${base}&type=vnc`, 'aria-label': label('Graphical console')}, 'Graphical console')
      : h('span', {class: 'btn btn-link', 'aria-disabled': 'true', title: running ? 'Your role may not open graphical consoles.' : 'The VM does not run.'}, 'Graphical console'),
    running ? h('a', {class: 'btn btn-link', href: `${base}&type=serial`, 'aria-label': label('Serial console')}, 'Serial console')
      : h('span', {class: 'btn btn-link', 'aria-disabled': 'true', title: 'The VM does not run.'}, 'Serial console'));
}

// thumbnail is a running VM's screen, small.
export function thumbnail(v, width = 120) {
  if (v.state !== 'Up' && v.state !== 'Paused') return h('span', {class: 'thumb thumb-none'}, v.state === 'Down' ? 'off' : '—');
  const img = h('img', {class: 'thumb', width, height: Math.round(width * 0.75), loading: 'lazy', decoding: 'async',
    alt: `The screen of ${v.name}`, src: `/api/v1/vms/${encodeURIComponent(v.id)}/screenshot?at=${Date.now()}`});
  img.addEventListener('error', () => img.replaceWith(h('span', {class: 'thumb thumb-none'}, 'no display')));
  return img;
}
