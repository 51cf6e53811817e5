// The overview: clusters by architecture and CPU type with their hosts
// and VMs, the hosts that need attention and why, the live events.

import {h, replace, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, section, table, row} from '../ui.js';
import {clock} from '../format.js';

// Statuses that need no attention.
const FINE = new Set(['Up', 'Maintenance']);

export async function overview(main) {
  replace(main, h('h1', null, 'Overview'), h('p', {class: 'loading', role: 'status'}, 'Loading the clusters, hosts and VMs…'));
  const [clusters, hosts, vmList, events] = await Promise.all([
    api.get('/clusters'), api.get('/hosts'), api.get('/vms'), api.get('/events?limit=20')]);
  performance.mark('polyvirt:overview-data');

  const hostsBy = groupBy(hosts, (x) => x.clusterId);
  const vmsBy = groupBy(vmList, (x) => x.clusterId);
  // Clusters grouped by architecture and CPU type.
  const groups = new Map();
  for (const c of clusters) {
    const key = `${c.arch || 'no architecture yet'} · ${c.cpuType || 'no CPU type yet'}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const groupEls = [];
  for (const [key, cs] of [...groups.entries()].sort()) {
    groupEls.push(h('div', {class: 'arch-group'}, h('h3', null, key), cs.map((c) => clusterCard(c, hostsBy.get(c.id) || [], vmsBy.get(c.id) || []))));
  }

  const attention = hosts.filter((x) => !FINE.has(x.status));
  const attentionRows = attention.map((x) => row(
    h('a', {href: `#/hosts/${encodeURIComponent(x.name)}`}, x.name), x.cluster, badge(x.status),
    x.statusCode ? h('code', null, x.statusCode) : '—', text(x.statusMessage)));

  const log = h('ol', {class: 'events', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Events, newest first'},
    events.events.map(eventItem));
  const stop = listen((ev) => {
    log.prepend(eventItem(ev));
    while (log.children.length > 50) log.lastElementChild.remove();
  });

  const totals = h('p', {class: 'totals'},
    `${clusters.length} clusters, ${hosts.length} hosts (${hosts.filter((x) => x.status === 'Up').length} Up), ${vmList.length} VMs (${vmList.filter((v) => v.state === 'Up').length} running)`);

  replace(main, h('h1', null, 'Overview'), totals,
    h('div', {class: 'overview'},
      section('Clusters', groupEls.length ? groupEls : h('p', null, 'No clusters yet (polyvirt cluster create).')),
      h('div', {class: 'side'},
        section('Hosts that need attention',
          attention.length ? table('Hosts that need attention', ['Host', 'Cluster', 'Status', 'Code', 'Reason'], attentionRows, {hideCaption: true, scrollable: true})
            : h('p', {class: 'all-well'}, 'Every host is Up or in Maintenance.')),
        section('Events', log, h('p', null, h('a', {href: '#/vms'}, 'VMs'), ' · the whole audit log: polyvirt events')))));
  // For the benchmark: built, painted (a task after the next frame's
  // rendering), then the next task (the page answers input again).
  performance.mark('polyvirt:overview-built');
  requestAnimationFrame(() => setTimeout(() => {
    performance.mark('polyvirt:overview-rendered');
    setTimeout(() => performance.mark('polyvirt:overview-interactive'), 0);
  }, 0));
  return stop;
}

function groupBy(list, key) {
  const m = new Map();
  for (const x of list) {
    const k = key(x);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(x);
  }
  return m;
}

function counts(list, key) {
  const m = new Map();
  for (const x of list) m.set(key(x), (m.get(key(x)) || 0) + 1);
  return [...m.entries()].sort().map(([k, n]) => `${n} ${k}`).join(', ');
}

function clusterCard(c, hs, vs) {
  return h('article', {class: 'cluster', 'aria-label': `Cluster ${c.name}`},
    h('h4', null, h('a', {href: `#/hosts?cluster=${encodeURIComponent(c.name)}`}, c.name),
      ' ', h('span', {class: 'muted'}, c.emulatedMachine ? `(${c.emulatedMachine})` : '')),
    h('p', {class: 'counts'},
      h('a', {href: `#/hosts?cluster=${encodeURIComponent(c.name)}`}, `${hs.length} hosts`), hs.length ? ` — ${counts(hs, (x) => x.status)}` : '', h('br'),
      h('a', {href: `#/vms?cluster=${encodeURIComponent(c.name)}`}, `${vs.length} VMs`), vs.length ? ` — ${counts(vs, (v) => v.state)}` : ''),
    hs.length ? h('ul', {class: 'hosts-list'}, hs.map((x) => h('li', {dataset: {host: x.name}},
      h('a', {href: `#/hosts/${encodeURIComponent(x.name)}`}, x.name), ' ',
      h('span', {class: 'cpu-type'}, x.cpuType || x.arch || ''), ' ', badge(x.status)))) : null);
}

export function eventItem(ev) {
  return h('li', {class: `event sev-${ev.severity}`},
    h('time', {datetime: ev.time}, clock(ev.time)), ' ',
    h('span', {class: 'sev'}, ev.severity), ' ',
    ev.code ? h('code', null, ev.code) : null, ev.code ? ' ' : null,
    h('span', {class: 'msg'}, ev.message),
    ev.reason ? h('span', {class: 'reason'}, ` (${ev.reason})`) : null);
}
