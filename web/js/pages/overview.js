// The overview: clusters by architecture and CPU type with their hosts
// and VMs counted, the hosts that need attention and why, the live events.
// One small answer (GET /overview) draws it; a big cluster's host lines
// are read and drawn when it is opened, a page at a time.

import {h, replace, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, section, table, row} from '../ui.js';
import {clock} from '../format.js';
import {hostLine, hostLines} from './hostlines.js';

export async function overview(main) {
  replace(main, h('h1', null, 'Overview'), h('p', {class: 'loading', role: 'status'}, 'Loading the clusters, hosts and VMs…'));
  const [o, events] = await Promise.all([api.get('/overview'), api.get('/events?limit=20')]);
  performance.mark('polyvirt:overview-data');

  // Clusters grouped by architecture and CPU type.
  const groups = new Map();
  for (const c of o.clusters) {
    const key = `${c.arch || 'no architecture yet'} · ${c.cpuType || 'no CPU type yet'}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const groupEls = [];
  for (const [key, cs] of [...groups.entries()].sort()) {
    groupEls.push(h('div', {class: 'arch-group'}, h('h3', null, key), cs.map(clusterCard)));
  }

  const attentionRows = o.attention.map((x) => row(
    h('a', {href: `#/hosts/${encodeURIComponent(x.name)}`}, x.name), x.cluster, badge(x.status),
    x.statusCode ? h('code', null, x.statusCode) : '—', text(x.statusMessage)));
  const more = o.attentionTotal - o.attention.length;

  const log = h('ol', {class: 'events', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Events, newest first'},
    events.events.map(eventItem));
  const stop = listen((ev) => {
    log.prepend(eventItem(ev));
    while (log.children.length > 50) log.lastElementChild.remove();
  });

  const totals = h('p', {class: 'totals'},
    `${o.clusters.length} clusters, ${o.hosts} hosts (${o.hostsUp} Up), ${o.vms} VMs (${o.vmsRunning} running)`);

  replace(main, h('h1', null, 'Overview'), totals,
    h('div', {class: 'overview'},
      section('Clusters', groupEls.length ? groupEls : h('p', null, 'No clusters yet (polyvirt cluster create).')),
      h('div', {class: 'side'},
        section('Hosts that need attention',
          o.attentionTotal ? [table('Hosts that need attention', ['Host', 'Cluster', 'Status', 'Code', 'Reason'], attentionRows, {hideCaption: true, scrollable: true}),
            more > 0 ? h('p', null, `and ${more} more: `, h('a', {href: '#/hosts'}, 'the host list')) : null]
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

// counts is "2 Up, 1 Maintenance" of a map of counts.
function counts(m) {
  return Object.entries(m || {}).sort().map(([k, n]) => `${n} ${k}`).join(', ');
}

function sum(m) {
  return Object.values(m || {}).reduce((a, b) => a + b, 0);
}

function clusterCard(c) {
  const nHosts = sum(c.hosts);
  const nVMs = sum(c.vms);
  const q = encodeURIComponent(c.name);
  let hostsEl = null;
  if (c.hostLines && c.hostLines.length) {
    hostsEl = h('ul', {class: 'hosts-list', 'aria-label': `Hosts of ${c.name}`}, c.hostLines.map(hostLine));
  } else if (nHosts) {
    // A big cluster: its hosts' lines when it is opened.
    const box = h('div', {class: 'cluster-hosts', id: `hosts-of-${c.id}`});
    const open = h('button', {type: 'button', class: 'btn btn-quiet open-hosts', 'aria-expanded': 'false', 'aria-controls': box.id},
      `Show its ${nHosts} hosts`);
    open.addEventListener('click', () => {
      const expanded = open.getAttribute('aria-expanded') === 'true';
      open.setAttribute('aria-expanded', String(!expanded));
      open.textContent = expanded ? `Show its ${nHosts} hosts` : `Hide its ${nHosts} hosts`;
      if (expanded) box.replaceChildren();
      else hostLines(box, c.name);
    });
    hostsEl = [open, box];
  }
  return h('article', {class: 'cluster', 'aria-label': `Cluster ${c.name}`, dataset: {cluster: c.name}},
    h('h4', null, h('a', {href: `#/clusters/${q}`}, c.name),
      ' ', h('span', {class: 'muted'}, c.emulatedMachine ? `(${c.emulatedMachine})` : '')),
    h('p', {class: 'counts'},
      h('a', {href: `#/hosts?cluster=${q}`}, `${nHosts} hosts`), nHosts ? ` — ${counts(c.hosts)}` : '', h('br'),
      h('a', {href: `#/vms?cluster=${q}`}, `${nVMs} VMs`), nVMs ? ` — ${counts(c.vms)}` : ''),
    hostsEl);
}

export function eventItem(ev) {
  return h('li', {class: `event sev-${ev.severity}`},
    h('time', {datetime: ev.time}, clock(ev.time)), ' ',
    h('span', {class: 'sev'}, ev.severity), ' ',
    ev.code ? h('code', null, ev.code) : null, ev.code ? ' ' : null,
    h('span', {class: 'msg'}, ev.message),
    ev.reason ? h('span', {class: 'reason'}, ` (${ev.reason})`) : null);
}
