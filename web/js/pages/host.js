// One host: status and reason, identity (POWER's type-model, serial,
// platform, SMT, both firmware banks), NUMA, TCG/fake-KVM marks,
// statistics over the last hour, maintenance/activate, the firmware
// workflow.

import {h, replace, text} from '../dom.js';
import * as api from '../api.js';
import {listen} from '../events.js';
import {badge, section, dl, table, row, actionButton, notice, errorText} from '../ui.js';
import {sparkline} from '../charts.js';
import {mib, pct, time, hasTime, ago, hostStats} from '../format.js';

export async function hostPage(main, {args}) {
  const name = args[0];
  const path = `/hosts/${api.esc(name)}`;
  let timer = null;
  let stopped = false;
  let refused = null;
  const draw = async () => {
    const [host, history, fw, vmList] = await Promise.all([
      api.get(`${path}?capabilities=true`), api.get(`${path}/stats/history`),
      api.get(`${path}/firmware`).catch((e) => ({error: errorText(e), supported: false, history: []})),
      api.get(`/vms?host=${api.esc(name)}`)]);
    if (stopped) return;
    const caps = host.capabilities || {};
    const hw = caps.hardware || {};
    const cpu = caps.cpu || {};
    const virt = caps.virt || {};
    const st = hostStats(host);
    const smt = cpu.threadsPerCore
      ? `${cpu.threadsPerCore} thread${cpu.threadsPerCore === 1 ? '' : 's'} per core online${cpu.nodeinfo && cpu.nodeinfo.threads > cpu.threadsPerCore ? ` of ${cpu.nodeinfo.threads} (SMT off)` : ''}`
      : '';
    const marks = [];
    if (caps.fakeKvm) marks.push(h('span', {class: 'mark mark-fake'}, 'fake KVM'));
    if (virt.domainType === 'qemu') marks.push(h('span', {class: 'mark mark-tcg'}, 'TCG (emulated, no KVM)'));
    if (virt.kvm) marks.push(h('span', {class: 'mark mark-kvm'}, 'KVM'));

    const sys = fw.inventory && fw.inventory.system;
    const banks = sys ? [
      ['Temporary bank', levelText(sys.temporary)], ['Permanent bank', levelText(sys.permanent)],
      ['Booted from', sys.bootedSide ? `${sys.bootedSide} (${levelText(sys.booted)})` : levelText(sys.booted)],
      ['Service processor', sys.service]] : [];
    const components = [];
    for (const [k, v] of [...(caps.firmware || []).map((f) => [f.component, f.version]),
      ...((fw.inventory && fw.inventory.components) || []).map((c) => [c.name, c.version])]) {
      if (!components.some(([k2, v2]) => k2 === k && v2 === v)) components.push([k, v]);
    }

    const pts = (f) => history.points.map((p) => ({t: new Date(p.time).getTime(), v: f(p)}));
    const charts = h('div', {class: 'charts'},
      sparkline('CPU', pts((p) => p.cpuUsagePercent), st ? pct(st.cpu) : '—', {max: 100, fmt: pct}),
      sparkline('Memory used', pts((p) => p.memoryUsedPercent), st ? pct(st.mem) : '—', {max: 100, fmt: pct}),
      sparkline('Load (1 min)', pts((p) => p.load1), st ? String(st.load1) : '—', {fmt: (v) => String(v)}),
      sparkline('Running VMs', pts((p) => p.vmsRunning), st ? String(st.vms) : '—', {fmt: (v) => String(v)}));

    const done = () => draw().catch((e) => notice(errorText(e), 'error'));
    const running = vmList.filter((v) => v.state !== 'Down').length;
    const refusal = h('div', {class: 'refusal', id: 'maintenance-refusal', hidden: true});
    // Maintenance evacuates: the VMs migrate away first; refused (every VM
    // that cannot leave named with its reason) unless stopVms.
    const maintenance = (stopVms) => async () => {
      try {
        const res = await api.post(`${path}/maintenance`, stopVms ? {stopVms: true} : {});
        refused = null;
        return res;
      } catch (e) {
        if (e instanceof api.ApiError && e.code === MAINTENANCE_REFUSED) {
          refused = e;
          return null;
        }
        throw e;
      }
    };
    // The last refusal stays shown (the page draws itself again on events)
    // until the host switched or the switch is asked again.
    if (refused && host.status !== 'Up') refused = null;
    if (refused) {
      showRefusal(refusal, name, refused, actionButton('Shut them down and switch to Maintenance', 'POST', '/hosts/{host}/maintenance', maintenance(true),
        {class: 'btn btn-danger', done, confirm: `Shut down the VMs of ${name} that cannot leave it (the others migrate), then switch it to Maintenance?`}));
    }
    const actions = h('div', {class: 'actions'},
      actionButton('Maintenance (evacuate)', 'POST', '/hosts/{host}/maintenance', maintenance(false),
        {disabled: host.status === 'Maintenance', done, title: 'Evacuate: its VMs migrate to other hosts of its cluster, then it is in Maintenance',
          confirm: running ? `Switch ${name} to Maintenance? It evacuates first: its ${running} running VM${running === 1 ? '' : 's'} migrate to other hosts of its cluster, and nothing new starts on it.`
            : `Switch ${name} to Maintenance? No VM runs on it; nothing new starts on it.`}),
      actionButton('Activate', 'POST', '/hosts/{host}/activate', () => api.post(`${path}/activate`, {}),
        {disabled: host.status === 'Up', done}));
    const evacuation = h('div', {class: 'evacuation'});
    if (host.status === 'PreparingForMaintenance' || running) {
      api.get(`${path}/evacuation`).then((ev) => { if (!stopped) evacuation.replaceChildren(evacuationView(ev)); }).catch(() => {});
    }

    const numa = (caps.numa || []).map((n) => row(String(n.id), cpuList(n.cpus), mib(n.memoryMiB), (n.distances || []).join(' ')));
    const vmsRows = vmList.map((v) => row(h('a', {href: `#/vms/${encodeURIComponent(v.name)}`}, v.name), badge(v.state), mib(v.memoryMiB), String(v.vcpus)));

    replace(main,
      h('p', {class: 'crumbs'}, h('a', {href: '#/hosts'}, 'Hosts'), ' / '),
      h('h1', null, name, ' ', badge(host.status)),
      host.statusCode || host.statusMessage
        ? h('p', {class: `reason ${host.status === 'Up' ? '' : 'reason-attention'}`}, host.statusCode ? h('code', null, host.statusCode) : null, ' ', text(host.statusMessage))
        : null,
      h('p', {class: 'marks'}, marks),
      actions,
      h('p', {class: 'hint'}, 'Maintenance evacuates the host: its running VMs migrate to other hosts of its cluster first.'),
      refusal,
      evacuation,
      h('div', {class: 'grid'},
        section('What it is', dl([
          ['Cluster', h('a', {href: `#/clusters/${encodeURIComponent(host.cluster)}`}, host.cluster)], ['Architecture', host.arch], ['CPU type', host.cpuType], ['CPU model', cpu.model || host.cpuModel],
          ['Vendor', cpu.vendor || hw.manufacturer], ['Machine', hw.productName], ['Type-model', hw.model], ['Serial', hw.serialNumber],
          ['Platform', cpu.platform], ['CPUs', cpu.totalCpus ? `${cpu.totalCpus} (${cpu.sockets} sockets × ${cpu.coresPerSocket} cores)` : ''],
          ['SMT', smt], ['Online CPUs', cpu.onlineCpuList], ['Memory', caps.memoryMiB ? mib(caps.memoryMiB) : ''],
          ['Domain type', virt.domainType], ['KVM', virt.kvm ? 'usable' : virt.kvmReason], ['libvirt / QEMU', virt.libvirtVersion ? `${virt.libvirtVersion} / ${virt.qemuVersion}` : ''],
          ['Emulated machines', (host.emulatedMachines || []).slice(0, 6).join(', ')], ['Address', host.address], ['Last seen', ago(host.lastSeen)]])),
        section('Statistics, last hour', charts, h('p', {class: 'hint'}, `One point every ${history.interval}, since this engine started.`)),
        section('NUMA', table('NUMA nodes', ['Node', 'CPUs', 'Memory', 'Distances'], numa, {hideCaption: true, empty: 'No NUMA information.'})),
        section('Firmware', dl([...banks, ...components]), firmwarePanel(name, path, fw, done),
          fw.supported ? h('p', {class: 'hint'}, 'Every host of the cluster in turn: ', h('a', {href: `#/clusters/${encodeURIComponent(host.cluster)}`}, `the firmware rollout of ${host.cluster}`), '.') : null),
        section('VMs on this host', table('VMs on this host', ['VM', 'State', 'Memory', 'vCPUs'], vmsRows, {hideCaption: true, empty: 'No VM runs here.'}))));
    // A firmware operation under way: follow its progress.
    clearTimeout(timer);
    const op = fw.operation;
    if ((op && !['idle', 'committed', 'rejected', 'failed', 'cancelled'].includes(op.state)) || host.status === 'PreparingForMaintenance') {
      timer = setTimeout(done, 3000);
    }
  };
  await draw();
  let pending = null;
  const stop = listen((ev) => {
    if (ev.objectName === name && !pending) pending = setTimeout(() => { pending = null; draw().catch(() => {}); }, 400);
  });
  return () => {
    stopped = true;
    stop();
    clearTimeout(timer);
    clearTimeout(pending);
  };
}

const MAINTENANCE_REFUSED = 'HOST_MAINTENANCE_VMS_CANNOT_MIGRATE';

// showRefusal names each VM that cannot leave the host, with its reason,
// and offers the --stop-vms equivalent as an explicit choice.
function showRefusal(el, name, err, stopButton) {
  const byVM = new Map();
  for (const d of err.errors) {
    const m = /^vm:(\S+)/.exec(d.field || '');
    if (!m) continue;
    if (!byVM.has(m[1])) byVM.set(m[1], []);
    byVM.get(m[1]).push(d);
  }
  el.replaceChildren(
    h('h2', null, `${name} cannot switch to Maintenance`),
    h('p', null, h('code', null, err.code), ' These VMs cannot leave it:'),
    h('ul', {class: 'refused-vms'}, [...byVM.entries()].map(([vm, ds]) => h('li', {dataset: {vm}},
      h('a', {href: `#/vms/${encodeURIComponent(vm)}`}, vm), ': ',
      ds.map((d, i) => [i ? '; ' : '', h('code', null, d.code), ' ', d.message])))),
    h('p', null, 'Stop them first, or shut them down as part of the switch (the others migrate away):'),
    h('div', {class: 'actions'}, stopButton));
  el.hidden = false;
  el.setAttribute('role', 'alert');
}

// evacuationView shows a host's evacuation: each VM's outcome.
function evacuationView(ev) {
  if (!ev || !ev.vms || !ev.vms.length) return h('span');
  return h('div', {class: 'panel'}, h('h2', null, `Evacuation (${hasTime(ev.finished) ? `ended ${time(ev.finished)}` : `since ${time(ev.started)}`})`),
    table('Evacuation', ['VM', 'Outcome', 'To', 'Why'], ev.vms.map((x) => row(
      h('a', {href: `#/vms/${encodeURIComponent(x.name)}`}, x.name), x.outcome, text(x.destination),
      x.code ? [h('code', null, x.code), ' ', text(x.message)] : text(x.message))), {hideCaption: true}));
}

function levelText(l) {
  if (!l || !l.name) return '';
  return l.image ? `${l.name} (${l.image})` : l.name;
}

function cpuList(cpus) {
  if (!cpus || !cpus.length) return '—';
  return cpus.length > 12 ? `${cpus.slice(0, 12).join(',')}… (${cpus.length})` : cpus.join(',');
}

// firmwarePanel is the firmware workflow: upload, validate, flash, then
// commit or reject, with the operation's progress.
function firmwarePanel(name, path, fw, done) {
  if (fw.error) return h('p', {class: 'error'}, fw.error);
  if (!fw.supported) return h('p', {class: 'hint'}, 'polyvirt does not update this host\'s system firmware (POWER hosts with update_flash only).');
  const op = fw.operation || {state: 'idle'};
  const file = h('input', {type: 'file', id: 'fw-image', accept: '.rpm,.img'});
  const step = (label, s, enabled, confirm) => actionButton(label, 'POST', `/hosts/{host}/firmware/${s}`,
    () => api.post(`${path}/firmware/${s}`, {}), {disabled: !enabled, done, confirm});
  const upload = actionButton('Upload', 'POST', '/hosts/{host}/firmware/image', async () => {
    if (!file.files.length) throw new Error('Choose an image file first.');
    const f = file.files[0];
    return api.call('POST', `${path}/firmware/image?name=${api.esc(f.name)}`, f);
  }, {done});
  const terminal = ['idle', 'committed', 'rejected', 'failed', 'cancelled'].includes(op.state);
  return h('div', {class: 'firmware'},
    h('p', null, 'Operation: ', h('strong', null, op.state), op.since ? ` since ${time(op.since)}` : '', op.error ? h('span', {class: 'error'}, ` — ${op.error}`) : null),
    h('div', {class: 'actions'},
      h('label', {for: 'fw-image'}, 'Image'), file, upload,
      step('Validate', 'validate', op.state === 'uploaded'),
      step('Flash', 'flash', op.state === 'validated', `Flash the validated image on ${name}? The host reboots.`),
      step('Commit', 'commit', op.state === 'awaiting-decision'),
      step('Reject', 'reject', op.state === 'awaiting-decision'),
      step('Cancel', 'cancel', !terminal && ['uploaded', 'validated'].includes(op.state))),
    fw.history && fw.history.length ? h('ol', {class: 'fw-history'}, fw.history.slice(0, 3).map((r) => h('li', null,
      `${time(r.created)}: ${r.state} ${r.fromLevel || ''}${r.toLevel ? ` → ${r.toLevel}` : ''}`,
      h('ol', null, (r.steps || []).map((s) => h('li', null, `${time(s.time)} ${s.state}${s.message ? `: ${s.message}` : ''}`)))))) : null);
}
