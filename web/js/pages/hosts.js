// The hosts: status and reason, what each is, its load.

import {h, replace, select, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, table, row} from '../ui.js';
import {hostStats, pct, ago} from '../format.js';

export async function hosts(main, {params}) {
  let stopped = false;
  const draw = async () => {
    if (!stopped) await drawHosts(main, params);
  };
  await draw();
  // Status changes show without a reload.
  let timer = null;
  const stop = listen((ev) => {
    if (ev.objectKind === 'host' && !timer) timer = setTimeout(() => { timer = null; draw().catch(() => {}); }, 500);
  });
  return () => {
    stopped = true;
    stop();
    clearTimeout(timer);
  };
}

async function drawHosts(main, params) {
  const [list, clusters] = await Promise.all([api.hosts(), api.get('/clusters')]);
  const cluster = params.get('cluster') || '';
  const status = params.get('status') || '';
  const clusterSel = select({id: 'host-filter-cluster'}, [['', 'All clusters'], ...clusters.map((c) => c.name)], cluster);
  const statusSel = select({id: 'host-filter-status'}, [['', 'Any status'], ...[...new Set(list.map((x) => x.status))].sort()], status);
  const apply = () => {
    const q = new URLSearchParams();
    if (clusterSel.value) q.set('cluster', clusterSel.value);
    if (statusSel.value) q.set('status', statusSel.value);
    window.location.hash = `#/hosts${q.toString() ? `?${q}` : ''}`;
  };
  clusterSel.addEventListener('change', apply);
  statusSel.addEventListener('change', apply);
  const shown = list.filter((x) => (!cluster || x.cluster === cluster) && (!status || x.status === status));
  const hostRow = (x) => {
    const st = hostStats(x);
    return row(h('a', {href: `#/hosts/${encodeURIComponent(x.name)}`}, x.name), x.cluster,
      h('span', null, badge(x.status), x.statusCode ? h('code', {class: 'small'}, ` ${x.statusCode}`) : ''),
      text(x.arch), text(x.cpuType), text(x.cpuModel), st ? pct(st.cpu) : '—', st ? pct(st.mem) : '—', st ? String(st.vms) : '—', ago(x.lastSeen));
  };
  // A page of rows at a time: a thousand hosts are not drawn at once.
  const first = shown.slice(0, PAGE).map(hostRow);
  const tbl = table(`${shown.length} of ${list.length} hosts`, ['Host', 'Cluster', 'Status', 'Arch', 'CPU type', 'CPU model', 'CPU', 'Memory', 'VMs', 'Last seen'], first,
    {scrollable: true, empty: 'No host matches.'});
  let drawn = first.length;
  const more = h('button', {type: 'button', class: 'btn more', hidden: drawn >= shown.length});
  const label = () => { more.textContent = `Show ${Math.min(PAGE, shown.length - drawn)} more (${drawn} of ${shown.length} shown)`; };
  label();
  more.addEventListener('click', () => {
    const part = shown.slice(drawn, drawn + PAGE).map(hostRow);
    tbl.querySelector('tbody').append(...part);
    drawn += part.length;
    more.hidden = drawn >= shown.length;
    label();
    if (part.length) part[0].querySelector('a').focus();
  });
  replace(main, h('h1', null, 'Hosts'),
    h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter the hosts', on: {submit: (e) => e.preventDefault()}},
      h('label', {for: 'host-filter-cluster'}, 'Cluster'), clusterSel,
      h('label', {for: 'host-filter-status'}, 'Status'), statusSel),
    tbl, more);
}

// PAGE is how many hosts' rows are drawn at a time.
const PAGE = 200;
