// A VM's live migration: the Migrate form (a destination host of its
// cluster or the engine's choice, the policy, a bandwidth cap), the
// progress of a migration in flight (read from the engine every second),
// Cancel, and the outcome with its total time and downtime.

import {h, field, select, uid} from '../dom.js';
import * as api from '../api.js';
import {actionButton, dl, notice} from '../ui.js';
import {can, why} from '../session.js';
import {time} from '../format.js';

const ENDED = new Set(['completed', 'failed', 'canceled']);
const POLICIES = [['', 'The VM\'s (or its cluster\'s) policy'], ['minimal-downtime', 'minimal-downtime'],
  ['post-copy', 'post-copy'], ['suspend-workload', 'suspend-workload']];

// inFlight tells whether a migration document is of one under way.
export function inFlight(m) {
  return !!m && !ENDED.has(m.phase);
}

// bytes formats a byte count.
export function bytes(n) {
  const v = Number(n || 0);
  if (v >= 1 << 30) return `${(v / (1 << 30)).toFixed(2)} GiB`;
  if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB`;
  if (v >= 1 << 10) return `${(v / (1 << 10)).toFixed(0)} KiB`;
  return `${v} B`;
}

function seconds(ms) {
  return ms === undefined || ms === null ? '—' : `${(Number(ms) / 1000).toFixed(1)} s`;
}

// outcome is a finished migration in words: where, how long, the downtime.
export function outcome(m) {
  if (m.phase === 'completed') {
    return `Migrated from ${m.source} to ${m.destination} in ${seconds(m.elapsedMs)} (downtime ${m.downtimeMs ? `${m.downtimeMs} ms` : 'not measured'}).`;
  }
  const what = m.phase === 'canceled' ? 'canceled' : 'failed';
  return `The migration from ${m.source} to ${m.destination} ${what} after ${seconds(m.elapsedMs)}; the VM runs on ${m.source}.`;
}

// migrationPanel is the VM page's Migration section. redraw draws the VM
// page again; the returned {el, stop} stops the progress polling.
export function migrationPanel(v, redraw) {
  const p = `/vms/${api.esc(v.name)}`;
  const box = h('div', {class: 'migration', id: 'migration'});
  let timer = null;
  let stopped = false;
  const m = v.migration;
  if (inFlight(m) || v.state === 'MigratingFrom') {
    const progress = h('div', {class: 'migration-progress', role: 'status', 'aria-live': 'polite'});
    const cancel = actionButton('Cancel the migration', 'DELETE', '/vms/{vm}/migration', () => api.call('DELETE', `${p}/migration`),
      {class: 'btn btn-danger', confirm: `Cancel the migration of ${v.name}? It keeps running on its source.`,
        done: (res) => { if (res) notice(outcome(res)); redraw(); }});
    box.append(progress, h('div', {class: 'actions'}, cancel));
    const show = (mm) => {
      progress.replaceChildren(...progressView(mm));
    };
    show(m || {phase: 'preparing', source: v.host, destination: v.migratingTo});
    const poll = async () => {
      if (stopped) return;
      try {
        const mm = await api.get(`${p}/migration`);
        if (stopped) return;
        show(mm);
        if (!inFlight(mm)) {
          notice(outcome(mm), mm.phase === 'completed' ? 'info' : 'error');
          redraw();
          return;
        }
      } catch (e) {
        if (stopped) return;
      }
      timer = setTimeout(poll, 1000);
    };
    timer = setTimeout(poll, 500);
  } else {
    if (m && ENDED.has(m.phase)) {
      box.append(h('p', {class: `migration-outcome migration-${m.phase}`}, outcome(m),
        m.code ? [' ', h('code', null, m.code)] : null, m.error ? ` ${m.error}` : ''),
      h('p', {class: 'hint'}, `Started ${time(m.started)} by ${m.user || 'the engine'}${m.evacuation ? ' (its host\'s evacuation)' : ''}; policy ${m.policy}.`));
    }
    box.append(migrateForm(v, redraw));
  }
  return {el: box, stop: () => { stopped = true; clearTimeout(timer); }};
}

// progressView shows a migration in flight: phase, pass, memory copied.
function progressView(m) {
  const total = Number(m.memoryTotal || 0);
  const done = Number(m.memoryProcessed || 0);
  const left = Number(m.memoryRemaining || 0);
  // What is left tells the progress (untouched pages are not sent: what
  // was sent can stay far below the total); before it is known, what was
  // sent does.
  const pct = total ? Math.max(0, Math.min(100, Math.round((100 * (left ? total - left : done)) / total))) : 0;
  const id = uid('mig');
  return [
    h('p', null, h('strong', null, `Migrating to ${m.destination || '…'}`), ` from ${m.source || '…'} — phase `, h('strong', {class: 'migration-phase'}, m.phase),
      m.pass ? `, pass ${m.pass}` : ''),
    h('label', {for: id}, 'Memory copied'),
    h('progress', {id, max: 100, value: pct, 'aria-valuetext': `${pct} % of the memory copied`}),
    dl([['Memory processed', total ? `${bytes(done)} of ${bytes(total)}` : bytes(done)], ['Memory remaining', bytes(m.memoryRemaining)],
      ['Rate', m.memoryRate ? `${bytes(m.memoryRate)}/s` : ''], ['Disks', m.diskTotal ? `${bytes(m.diskProcessed)} of ${bytes(m.diskTotal)}` : ''],
      ['Policy', m.policy], ['Elapsed', seconds(m.elapsedMs)]])];
}

// migrateForm asks where to (a host of the VM's cluster, or the engine's
// choice), the policy and a bandwidth cap.
function migrateForm(v, redraw) {
  const allowed = can('POST', '/vms/{vm}/migrate');
  const running = v.state === 'Up' || v.state === 'Paused';
  const dest = select({id: 'mig-host', disabled: !allowed || !running}, [['', 'Let the engine choose']], '');
  const policy = select({id: 'mig-policy', disabled: !allowed || !running}, POLICIES, '');
  const bw = h('input', {id: 'mig-bandwidth', type: 'number', min: 0, step: 1, inputmode: 'numeric', value: '', placeholder: 'no cap', disabled: !allowed || !running});
  // The other hosts of its cluster, loaded as the panel shows.
  api.hosts(`cluster=${api.esc(v.cluster)}`).then((hosts) => {
    for (const x of hosts) {
      if (x.name === v.host) continue;
      dest.append(h('option', {value: x.name}, `${x.name} (${x.status})`));
    }
  }).catch(() => {});
  const button = actionButton('Migrate', 'POST', '/vms/{vm}/migrate', () => {
    const req = {};
    if (dest.value) req.host = dest.value;
    if (policy.value) req.policy = policy.value;
    const n = Number(bw.value || 0);
    if (!Number.isInteger(n) || n < 0) throw new Error('The bandwidth cap is a whole number of MiB/s (0 or empty: none).');
    if (n) req.maxBandwidthMiBs = n;
    return api.post(`/vms/${api.esc(v.name)}/migrate`, req);
  }, {class: 'btn btn-primary', disabled: !running, title: running ? '' : 'Only a running VM migrates.', ariaLabel: `Migrate ${v.name}`,
    done: (m) => { if (m) notice(`Migrating ${v.name} from ${m.source} to ${m.destination} (policy ${m.policy}).`); redraw(); }});
  const form = h('form', {class: 'migrate-form', 'aria-label': `Migrate ${v.name}`, on: {submit: (e) => { e.preventDefault(); button.click(); }}},
    h('div', {class: 'form-row'},
      field('Destination host', dest, `Another host of cluster ${v.cluster}.`),
      field('Policy', policy),
      field('Bandwidth cap (MiB/s)', bw, 'Empty: no cap.')),
    h('div', {class: 'actions'}, button));
  if (!allowed) form.append(h('p', {class: 'hint'}, why('POST', '/vms/{vm}/migrate')));
  return form;
}
