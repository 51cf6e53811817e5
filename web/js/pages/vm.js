// One VM: what it is, where it runs, its metadata, its screen, its
// definition, its actions and consoles.

import {h, replace, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, section, dl, table, row} from '../ui.js';
import {mib, time} from '../format.js';
import {vmButtons, thumbnail} from './vmactions.js';
import {migrationPanel} from './migrate.js';

export async function vmPage(main, {args}) {
  const name = args[0];
  let stopped = false;
  let panel = null;
  const draw = async () => {
    let v;
    try {
      v = await api.get(`/vms/${api.esc(name)}`);
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 404) {
        replace(main, h('p', {class: 'crumbs'}, h('a', {href: '#/vms'}, 'VMs'), ' / '), h('h1', null, name), h('p', null, 'This VM does not exist (any more).'));
        return;
      }
      throw e;
    }
    if (stopped) return;
    if (panel) panel.stop();
    panel = migrationPanel(v, () => draw().catch(() => {}));
    const def = v.definition || {};
    const meta = Object.entries(def.metadata || {}).map(([k, val]) => row(k, val));
    const disks = (def.disks || []).map((d, i) => row(String(i), text(d.device || 'disk'), text(d.bus), text(d.source)));
    const nics = (def.nics || []).map((n, i) => row(String(i), text(n.model), text(n.network || n.bridge), text(n.mac)));
    replace(main,
      h('p', {class: 'crumbs'}, h('a', {href: '#/vms'}, 'VMs'), ' / '),
      h('h1', null, v.name, ' ', badge(v.state)),
      vmButtons(v, () => draw().catch(() => {})),
      h('div', {class: 'grid'},
        section('What it is', dl([
          ['Cluster', v.cluster], ['Host', v.host], ['Migrating to', v.migratingTo], ['Pinned to', v.pinnedHost], ['Last host', v.lastHost], ['Architecture', v.arch],
          ['Machine', v.machine], ['CPU', `${v.vcpus} vCPUs${v.cpuModel ? `, ${v.cpuModel}` : ''}`], ['Memory', mib(v.memoryMiB)],
          ['Display', def.display ? `${def.display.type}${def.display.video ? ` (${def.display.video})` : ''}` : 'none'],
          ['Serial console', def.console ? def.console.type : ''], ['Kernel', def.kernel ? def.kernel.path : ''],
          ['Highly available', v.ha ? 'yes' : 'no'], ['State since', time(v.stateChanged)], ['ID', v.id]])),
        section('Screen', thumbnail(v, 320)),
        section('Migration', panel.el),
        section('Metadata', table('Metadata', ['Key', 'Value'], meta, {hideCaption: true, empty: 'No metadata.', class: 'metadata'})),
        section('Disks and NICs',
          table('Disks', ['#', 'Device', 'Bus', 'Source'], disks, {empty: 'No disk.'}),
          table('NICs', ['#', 'Model', 'Network', 'MAC'], nics, {empty: 'No NIC.'})),
        section('Definition', h('pre', {class: 'definition', tabindex: '0', 'aria-label': 'The definition as JSON'}, JSON.stringify(def, null, 2)))));
  };
  await draw();
  let pending = null;
  const stop = listen((ev) => {
    if (ev.objectKind === 'vm' && ev.objectName === name && !pending) pending = setTimeout(() => { pending = null; draw().catch(() => {}); }, 400);
  });
  return () => {
    stopped = true;
    if (panel) panel.stop();
    stop();
    clearTimeout(pending);
  };
}
