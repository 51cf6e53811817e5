// The VMs: a filtered list (cluster, host, state, arch) with their screens
// and actions.

import {h, replace, select, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, table, row} from '../ui.js';
import {can} from '../session.js';
import {mib} from '../format.js';
import {vmButtons, thumbnail} from './vmactions.js';

const FILTERS = ['cluster', 'host', 'state', 'arch'];

export async function vms(main, {params}) {
  let stopped = false;
  const draw = async () => {
    if (!stopped) await drawVMs(main, params, () => draw().catch(() => {}));
  };
  await draw();
  let timer = null;
  const stop = listen((ev) => {
    if (ev.objectKind === 'vm' && !timer) timer = setTimeout(() => { timer = null; draw().catch(() => {}); }, 800);
  });
  return () => {
    stopped = true;
    stop();
    clearTimeout(timer);
  };
}

async function drawVMs(main, params, redraw) {
  const q = new URLSearchParams();
  for (const f of ['cluster', 'host', 'state']) if (params.get(f)) q.set(f, params.get(f));
  const [list, clusters, hostList, all] = await Promise.all([
    api.get(`/vms${q.toString() ? `?${q}` : ''}`), api.get('/clusters'), api.hosts(),
    q.toString() ? api.get('/vms') : null]);
  const everyVM = all || list;
  const arch = params.get('arch') || '';
  const shown = list.filter((v) => !arch || v.arch === arch);
  const sels = {
    cluster: select({id: 'vm-filter-cluster'}, [['', 'All clusters'], ...clusters.map((c) => c.name)], params.get('cluster') || ''),
    host: select({id: 'vm-filter-host'}, [['', 'All hosts'], ...hostList.map((x) => x.name)], params.get('host') || ''),
    state: select({id: 'vm-filter-state'}, [['', 'Any state'], ...['Up', 'Down', 'Paused', 'WaitForLaunch', 'PoweringDown', 'Unknown']], params.get('state') || ''),
    arch: select({id: 'vm-filter-arch'}, [['', 'Any architecture'], ...[...new Set(everyVM.map((v) => v.arch).filter(Boolean))].sort()], arch),
  };
  const apply = () => {
    const nq = new URLSearchParams();
    for (const f of FILTERS) if (sels[f].value) nq.set(f, sels[f].value);
    window.location.hash = `#/vms${nq.toString() ? `?${nq}` : ''}`;
  };
  for (const f of FILTERS) sels[f].addEventListener('change', apply);
  const rows = shown.map((v) => row(
    h('a', {href: `#/vms/${encodeURIComponent(v.name)}`}, v.name), thumbnail(v, 96), v.cluster, text(v.host), badge(v.state), text(v.arch),
    mib(v.memoryMiB), String(v.vcpus), vmButtons(v, redraw, {compact: true})));
  const newCluster = params.get('cluster') || (clusters[0] && clusters[0].name) || '';
  replace(main, h('h1', null, 'Virtual machines'),
    h('div', {class: 'toolbar'},
      can('POST', '/vms') ? h('a', {class: 'btn btn-primary', href: `#/vms-new?cluster=${encodeURIComponent(newCluster)}`}, 'New VM')
        : h('span', {class: 'btn btn-primary', 'aria-disabled': 'true', title: 'Your role may not create VMs.'}, 'New VM')),
    h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter the VMs', on: {submit: (e) => e.preventDefault()}},
      FILTERS.map((f) => [h('label', {for: sels[f].id}, f[0].toUpperCase() + f.slice(1)), sels[f]])),
    table(`${shown.length} of ${everyVM.length} VMs`, ['VM', 'Screen', 'Cluster', 'Host', 'State', 'Arch', 'Memory', 'vCPUs', 'Actions'], rows,
      {scrollable: true, empty: 'No VM matches.', class: 'vms'}));
}
