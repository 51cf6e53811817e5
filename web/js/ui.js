// Shared pieces of the pages: status badges, notices, action buttons,
// tables.

import {h, replace} from './dom.js';
import {can, why} from './session.js';
import {ApiError} from './api.js';

// The kind of a status (for its colour; the text says it too).
const GOOD = new Set(['Up', 'running']);
const WARN = new Set(['Maintenance', 'PreparingForMaintenance', 'Connecting', 'Installing', 'WaitForLaunch',
  'PoweringUp', 'PoweringDown', 'Paused', 'MigratingFrom', 'MigratingTo', 'RebootInProgress', 'Rebooting', 'SavingState', 'RestoringState']);
const BAD = new Set(['NonOperational', 'NonResponsive', 'InstallFailed', 'Down', 'Unknown', 'NotResponding']);

export function badge(status) {
  let kind = 'neutral';
  if (GOOD.has(status)) kind = 'good';
  else if (WARN.has(status)) kind = 'warn';
  else if (BAD.has(status)) kind = 'bad';
  if (status === 'Down') kind = 'off';
  return h('span', {class: `badge badge-${kind}`}, status || '—');
}

// notice shows a message in the page's live region (errors as alerts).
export function notice(msg, kind = 'info') {
  const region = document.getElementById(kind === 'error' ? 'alerts' : 'status');
  if (!region) return;
  const item = h('p', {class: `notice notice-${kind}`}, msg);
  region.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 15000 : 6000);
}

// errorText renders an API error: its code and message (every violation).
export function errorText(err) {
  if (err instanceof ApiError) {
    return err.all().map((e) => `${e.code}${e.field ? ` (${e.field})` : ''}: ${e.message}`).join('\n');
  }
  return String(err && err.message ? err.message : err);
}

// actionButton is a button for an API route: disabled (with the reason)
// when the user may not call it; it runs fn, then done, and shows errors.
export function actionButton(label, method, pattern, fn, opts = {}) {
  const allowed = can(method, pattern);
  const reason = why(method, pattern);
  const b = h('button', {type: 'button', class: opts.class || 'btn', disabled: !allowed || !!opts.disabled,
    title: reason || opts.title, 'aria-label': opts.ariaLabel, dataset: {route: `${method} ${pattern}`}}, label);
  b.addEventListener('click', async () => {
    if (opts.confirm && !window.confirm(opts.confirm)) return;
    b.disabled = true;
    b.setAttribute('aria-busy', 'true');
    try {
      const res = await fn();
      if (opts.done) opts.done(res);
    } catch (err) {
      notice(errorText(err), 'error');
    } finally {
      b.removeAttribute('aria-busy');
      b.disabled = !allowed || !!opts.disabled;
    }
  });
  return b;
}

// table makes a table with a caption, header cells and rows of cells.
export function table(caption, headers, rows, opts = {}) {
  return h('div', {class: 'table-wrap', tabindex: opts.scrollable ? '0' : null, role: opts.scrollable ? 'region' : null, 'aria-label': opts.scrollable ? caption : null},
    h('table', {class: opts.class || ''},
      h('caption', {class: opts.hideCaption ? 'visually-hidden' : null}, caption),
      h('thead', null, h('tr', null, headers.map((x) => h('th', {scope: 'col'}, x)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', {colspan: headers.length, class: 'empty'}, opts.empty || 'None.')))));
}

export function row(...cells) {
  return h('tr', null, cells.map((c, i) => (i === 0 ? h('th', {scope: 'row'}, c) : h('td', null, c))));
}

// dl makes a description list of [term, value] pairs (empty values left out
// unless keep).
export function dl(pairs, keep = false) {
  const items = [];
  for (const [k, v] of pairs) {
    if (!keep && (v === undefined || v === null || v === '')) continue;
    items.push(h('dt', null, k), h('dd', null, v === undefined || v === null || v === '' ? '—' : v));
  }
  return h('dl', {class: 'facts'}, items);
}

export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', {class: 'panel', 'aria-labelledby': id}, h('h2', {id}, title), children);
}

// loading replaces a region's content with a loading line.
export function loading(el, what) {
  replace(el, h('p', {class: 'loading', role: 'status'}, `Loading ${what}…`));
}
