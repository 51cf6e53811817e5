// One cluster: what it is, its hosts (a page at a time), and its rolling
// firmware update: the one under way or the last one with each host's
// progress and outcome, pause / resume / abort, and a form to start one.

import {h, replace, text, field, select} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, section, dl, table, row, actionButton, notice, errorText} from '../ui.js';
import {can} from '../session.js';
import {time, hasTime} from '../format.js';
import {hostLines} from './hostlines.js';

const ACTIVE = new Set(['running', 'paused']);

export async function clusterPage(main, {args}) {
  const name = args[0];
  const path = `/clusters/${api.esc(name)}`;
  let stopped = false;
  let timer = null;
  const hostsEl = h('div', {class: 'cluster-hosts'});
  const rolloutEl = h('div', {class: 'rollout', id: 'rollout'});
  const draw = async () => {
    const c = await api.get(path);
    if (stopped) return;
    const counts = Object.entries(c.hosts || {}).sort().map(([s, n]) => `${n} ${s}`).join(', ');
    const total = Object.values(c.hosts || {}).reduce((a, b) => a + b, 0);
    replace(main,
      h('p', {class: 'crumbs'}, h('a', {href: '#/overview'}, 'Overview'), ' / '),
      h('h1', null, `Cluster ${c.name}`),
      h('div', {class: 'grid'},
        section('What it is', dl([['Architecture', c.arch], ['CPU type', c.cpuType], ['Emulated machine', c.emulatedMachine],
          ['Description', c.description], ['Migration policy', c.migrationPolicy || 'minimal-downtime'],
          ['Migrations per host', `${c.migrationMaxOutgoing} out, ${c.migrationMaxIncoming} in${c.migrationEncrypted ? ', streams encrypted' : ''}`],
          ['Hosts', total ? `${total} (${counts})` : 'none'], ['ID', c.id]]),
        h('p', null, h('a', {href: `#/hosts?cluster=${encodeURIComponent(c.name)}`}, 'Its hosts in the host list'), ' · ',
          h('a', {href: `#/vms?cluster=${encodeURIComponent(c.name)}`}, 'its VMs'))),
        section('Firmware rollout', rolloutEl)),
      section('Hosts', hostsEl));
  };
  const drawRollout = async () => {
    clearTimeout(timer);
    let ro = null;
    let err = null;
    try {
      ro = await api.get(`${path}/firmware/rollout`);
    } catch (e) {
      if (!(e instanceof api.ApiError && e.status === 404)) err = e;
    }
    if (stopped) return;
    replace(rolloutEl, rolloutView(name, path, ro, err, () => drawRollout().catch(() => {})));
    // A rollout under way: follow it.
    if (ro && ACTIVE.has(ro.state)) timer = setTimeout(() => drawRollout().catch(() => {}), 3000);
  };
  await draw();
  await Promise.all([drawRollout(), hostLines(hostsEl, name)]);
  let pending = null;
  const stop = listen((ev) => {
    if ((ev.objectKind === 'cluster' && ev.objectName === name) || (ev.action || '').startsWith('rollout.')) {
      if (!pending) pending = setTimeout(() => { pending = null; drawRollout().catch(() => {}); }, 500);
    }
  });
  return () => {
    stopped = true;
    stop();
    clearTimeout(timer);
    clearTimeout(pending);
  };
}

// rolloutView is the rollout's state, its hosts, its controls, and (when
// none runs) the form that starts one.
function rolloutView(name, path, ro, err, done) {
  const out = [];
  if (err) out.push(h('p', {class: 'error', role: 'alert'}, errorText(err)));
  if (ro) {
    const act = (label, a, enabled, confirm) => actionButton(label, 'POST', `/clusters/{cluster}/firmware/rollout/${a}`,
      () => api.post(`${path}/firmware/rollout/${a}`, {}), {disabled: !enabled, confirm, done: (r) => { if (r) notice(`Rollout of ${name}: ${r.state}.`); done(); }});
    out.push(
      h('p', null, 'Rollout ', h('strong', {class: 'rollout-state'}, ro.state), ` of ${ro.imageName}`,
        hasTime(ro.started) ? ` since ${time(ro.started)}` : '', hasTime(ro.finished) ? `, ended ${time(ro.finished)}` : '', ` — started by ${ro.startedBy}`,
        ro.reason ? ` (${ro.reason})` : ''),
      ro.waiting ? h('p', {class: 'hint'}, `Waiting: ${ro.waiting}`) : null,
      ro.code || ro.message ? h('p', {class: 'error'}, ro.code ? h('code', null, ro.code) : null, ' ', text(ro.message)) : null,
      h('p', {class: 'hint'}, `At most ${ro.maxUnavailable} host${ro.maxUnavailable === 1 ? '' : 's'} out at once; soak ${ro.soak || 'none'}; commit ${ro.commit}.`),
      h('div', {class: 'actions', role: 'group', 'aria-label': 'The rollout'},
        act('Pause', 'pause', ro.state === 'running'),
        act('Resume', 'resume', ro.state === 'paused'),
        act('Abort', 'abort', ACTIVE.has(ro.state), `Abort the firmware rollout of ${name}? No further host starts; a flashed host's update is rejected.`)),
      table('Hosts of the rollout', ['Host', 'Phase', 'Level', 'Since', 'Why'], (ro.hosts || []).map((x) => row(
        h('a', {href: `#/hosts/${encodeURIComponent(x.host)}`}, x.host),
        h('span', {class: `rollout-phase phase-${x.phase}`}, x.phase, x.rejected ? ' (rejected)' : ''),
        x.toLevel ? `${x.fromLevel || '?'} → ${x.toLevel}${x.level ? ` (booted ${x.level})` : ''}` : text(x.level),
        time(x.since),
        x.code ? [h('code', null, x.code), ' ', text(x.message)] : text(x.message))), {hideCaption: false, class: 'rollout-hosts'}));
  } else if (!err) {
    out.push(h('p', null, 'No firmware rollout yet in this cluster.'));
  }
  if (!ro || !ACTIVE.has(ro.state)) out.push(startForm(name, path, done));
  return out;
}

// startForm starts a rollout: the image file (uploaded as the request's
// body, as the host's firmware upload), the hosts, and the pace.
function startForm(name, path, done) {
  const allowed = can('POST', '/clusters/{cluster}/firmware/rollout');
  const file = h('input', {type: 'file', id: 'ro-image', accept: '.rpm,.img', disabled: !allowed});
  const hosts = h('input', {type: 'text', id: 'ro-hosts', placeholder: 'every host of the cluster', disabled: !allowed, autocomplete: 'off'});
  const maxUn = h('input', {type: 'number', id: 'ro-max', min: 1, step: 1, value: '1', disabled: !allowed});
  const soak = h('input', {type: 'text', id: 'ro-soak', placeholder: '10m', disabled: !allowed, autocomplete: 'off'});
  const commit = select({id: 'ro-commit', disabled: !allowed}, [['auto', 'auto (after the soak)'], ['manual', 'manual (each host waits for its commit)']], 'auto');
  const reason = h('input', {type: 'text', id: 'ro-reason', disabled: !allowed, autocomplete: 'off'});
  const start = actionButton('Start the rollout', 'POST', '/clusters/{cluster}/firmware/rollout', async () => {
    if (!file.files.length) throw new Error('Choose the firmware image (the vendor\'s RPM or a .img) first.');
    const f = file.files[0];
    const q = new URLSearchParams({name: f.name});
    if (hosts.value.trim()) q.set('hosts', hosts.value.split(/[\s,]+/).filter(Boolean).join(','));
    if (maxUn.value) q.set('maxUnavailable', maxUn.value);
    if (soak.value.trim()) q.set('soak', soak.value.trim());
    q.set('commit', commit.value);
    if (reason.value.trim()) q.set('reason', reason.value.trim());
    return api.call('POST', `${path}/firmware/rollout?${q}`, f);
  }, {class: 'btn btn-primary', confirm: `Start a rolling firmware update of ${name}? Each host is evacuated, flashed and rebooted in turn.`,
    done: (r) => { if (r) notice(`Rollout of ${name} started: ${r.hosts.length} hosts.`); done(); }});
  return h('details', {class: 'rollout-start'},
    h('summary', null, 'Start a rolling firmware update'),
    h('p', {class: 'hint'}, 'POWER hosts that update their system firmware (update_flash). The image is uploaded from this browser to the engine, validated on every host first, then the hosts are updated one after another (evacuated, flashed, rebooted, checked).'),
    h('form', {class: 'rollout-form', on: {submit: (e) => { e.preventDefault(); start.click(); }}},
      field('Firmware image', file),
      field('Hosts', hosts, 'Names separated by commas; empty: every host of the cluster.'),
      field('Hosts out at once', maxUn),
      field('Soak', soak, 'How long a host runs healthy on its new level before its commit (e.g. 10m).'),
      field('Commit', commit),
      field('Reason', reason, 'For the audit log.'),
      h('div', {class: 'actions'}, start)));
}
