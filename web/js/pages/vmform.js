// A new VM: a form that follows its cluster's architecture (the engine's
// vm-options: on POWER the display offers VNC only, NICs virtio or
// spapr-vlan, disks on the buses POWER has), or a pasted YAML/JSON
// definition loaded into it. The engine checks it; every violation shows
// at once beside its field, with its code.

import {h, replace, field, setError, select} from '../dom.js';
import * as api from '../api.js';
import {can} from '../session.js';
import {notice, errorText} from '../ui.js';

// Which control shows the errors of a definition's field (the longest
// matching prefix wins).
const FIELD_OF = [
  ['name', 'name'], ['uuid', 'name'], ['arch', 'arch'], ['machine', 'arch'], ['osType', 'arch'], ['firmware', 'arch'],
  ['cpu.model', 'cpuModel'], ['cpu.mode', 'cpuModel'], ['cpu', 'vcpus'],
  ['memory', 'memory'],
  ['display.video', 'video'], ['display.monitors', 'video'], ['display', 'display'],
  ['nics[0].network', 'nicNet'], ['nics[0].bridge', 'nicNet'], ['nics[0]', 'nicModel'], ['nics', 'nicModel'],
  ['disks[0].bus', 'diskBus'], ['disks[0]', 'diskSource'], ['disks', 'diskSource'],
  ['kernel.initrd', 'kernelInitrd'], ['kernel.cmdline', 'kernelCmdline'], ['kernel', 'kernelPath'],
  ['metadata', 'metadata'], ['cluster', 'cluster'],
];

export function controlFor(path) {
  const f = (path || '').replace(/^definition\./, '');
  let best = null;
  for (const [prefix, ctl] of FIELD_OF) {
    if ((f === prefix || f.startsWith(`${prefix}.`) || f.startsWith(`${prefix}[`)) && (!best || prefix.length > best[0].length)) best = [prefix, ctl];
  }
  return best ? best[1] : null;
}

export async function vmForm(main, {params}) {
  const clusters = await api.get('/clusters');
  let cluster = params.get('cluster') || (clusters[0] && clusters[0].name) || '';
  let options = null;
  let base = {};

  const c = {
    cluster: select({id: 'vm-cluster', name: 'cluster'}, clusters.map((x) => [x.name, `${x.name} (${x.arch || '?'}, ${x.cpuType || 'no CPU type'})`]), cluster),
    name: h('input', {id: 'vm-name', name: 'name', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false'}),
    arch: h('select', {id: 'vm-arch', name: 'arch'}),
    cpuModel: h('select', {id: 'vm-cpu-model', name: 'cpuModel'}),
    vcpus: h('input', {id: 'vm-vcpus', name: 'vcpus', type: 'number', min: 1, value: 1, inputmode: 'numeric'}),
    memory: h('input', {id: 'vm-memory', name: 'memory', type: 'number', min: 1, inputmode: 'numeric'}),
    display: h('select', {id: 'vm-display', name: 'display'}),
    video: h('select', {id: 'vm-video', name: 'video'}),
    nicModel: h('select', {id: 'vm-nic-model', name: 'nicModel'}),
    nicNet: h('input', {id: 'vm-nic-network', name: 'nicNetwork', type: 'text', placeholder: 'default'}),
    diskSource: h('input', {id: 'vm-disk-source', name: 'diskSource', type: 'text', placeholder: '/var/lib/polyvirt/images/disk.qcow2', spellcheck: 'false'}),
    diskBus: h('select', {id: 'vm-disk-bus', name: 'diskBus'}),
    kernelPath: h('input', {id: 'vm-kernel', name: 'kernelPath', type: 'text', spellcheck: 'false'}),
    kernelInitrd: h('input', {id: 'vm-initrd', name: 'kernelInitrd', type: 'text', spellcheck: 'false'}),
    kernelCmdline: h('input', {id: 'vm-cmdline', name: 'kernelCmdline', type: 'text', spellcheck: 'false'}),
    metadata: h('textarea', {id: 'vm-metadata', name: 'metadata', rows: 3, spellcheck: 'false'}),
  };
  const yaml = h('textarea', {id: 'vm-yaml', rows: 10, spellcheck: 'false', class: 'code'});
  const summary = h('div', {class: 'error-summary', id: 'vm-errors', tabindex: '-1', hidden: true, role: 'alert'});
  const archHint = h('p', {class: 'hint', id: 'vm-arch-hint'});

  const archOpts = () => options && options.arches.find((a) => a.arch === c.arch.value);

  // fillChoices refills the selects from the architecture's options,
  // keeping a value the definition has even when the architecture does
  // not allow it (the engine says why).
  const fillChoices = (keep) => {
    const a = archOpts();
    const withValue = (list, value, what) => {
      const out = list.map((x) => (Array.isArray(x) ? x : [x, x]));
      if (value && !out.some(([v]) => v === value)) out.push([value, `${value} — ${what}`]);
      return out;
    };
    const na = a ? `not available on ${a.arch}` : 'not available';
    const cpuDefault = options && options.cpuType ? `the cluster's (${options.cpuType})` : 'the default';
    replaceOptions(c.cpuModel, withValue([['', cpuDefault], ...(a ? a.cpuModels : [])], keep.cpuModel, na), keep.cpuModel || '');
    const displays = a ? a.displays.map((d) => d.type) : [];
    const displayValue = keep.display || (a ? (a.headless ? 'none' : a.defaultDisplay) : '');
    replaceOptions(c.display, withValue([...displays, ['none', 'none (no display)']], displayValue, na), displayValue);
    fillVideo(keep.video);
    const nicValue = keep.nicModel === undefined ? '' : keep.nicModel;
    replaceOptions(c.nicModel, withValue([['', 'no NIC'], ...(a ? a.nicModels : [])], nicValue, na), nicValue);
    const busValue = keep.diskBus || (a ? a.defaultDiskBus : '');
    replaceOptions(c.diskBus, withValue(a ? a.diskBuses : [], busValue, na), busValue);
    if (a) {
      c.memory.step = a.memoryMultipleMiB || 1;
      c.memory.min = a.minMemoryMiB;
      c.memory.max = a.maxMemoryMiB;
      c.vcpus.max = a.maxVcpus;
      archHint.textContent = `${a.title}: machine ${options.emulatedMachine || a.machine}, memory ${a.minMemoryMiB} MiB or more${a.memoryMultipleMiB ? `, a multiple of ${a.memoryMultipleMiB} MiB` : ''}, serial console ${a.consoleDevice}.`;
    }
  };
  const fillVideo = (keepVideo) => {
    const a = archOpts();
    const d = a && a.displays.find((x) => x.type === c.display.value);
    const videos = d ? d.videos : [];
    const value = keepVideo || '';
    const list = [['', d ? `default (${d.defaultVideo})` : 'none'], ...videos];
    if (value && !videos.includes(value)) list.push([value, `${value} — not available with ${c.display.value}`]);
    replaceOptions(c.video, list, value);
  };
  c.display.addEventListener('change', () => fillVideo(''));
  c.arch.addEventListener('change', () => fillChoices(current()));

  // current reads the form's values (to keep them across refills).
  const current = () => ({cpuModel: c.cpuModel.value, display: c.display.value, video: c.video.value, nicModel: c.nicModel.value, diskBus: c.diskBus.value});

  const loadOptions = async () => {
    options = await api.get(`/clusters/${api.esc(cluster)}/vm-options`);
    const arches = options.arches.map((a) => [a.arch, a.title]);
    const want = base.arch || options.defaultArch || (arches[0] && arches[0][0]) || '';
    replaceOptions(c.arch, arches.some(([v]) => v === want) ? arches : [...arches, [want, `${want} — not in this cluster`]], want);
    const a = archOpts();
    if (a && !c.memory.value) c.memory.value = a.defaultMemoryMiB;
    fillChoices(fromDefinition(base));
  };
  c.cluster.addEventListener('change', async () => {
    cluster = c.cluster.value;
    try {
      await loadOptions();
    } catch (e) {
      notice(errorText(e), 'error');
    }
  });

  // fill puts a definition into the form.
  const fill = (def) => {
    base = def || {};
    const v = fromDefinition(base);
    c.name.value = base.name || '';
    if (v.vcpus) c.vcpus.value = v.vcpus;
    if (base.memory && base.memory.sizeMiB) c.memory.value = base.memory.sizeMiB;
    c.nicNet.value = v.nicNet || '';
    c.diskSource.value = v.diskSource || '';
    c.kernelPath.value = (base.kernel && base.kernel.path) || '';
    c.kernelInitrd.value = (base.kernel && base.kernel.initrd) || '';
    c.kernelCmdline.value = (base.kernel && base.kernel.cmdline) || '';
    c.metadata.value = Object.entries(base.metadata || {}).map(([k, val]) => `${k} = ${val}`).join('\n');
    if (base.arch && options && options.arches.some((a) => a.arch === base.arch)) c.arch.value = base.arch;
    fillChoices(v);
  };

  // toDefinition is the definition the form describes: the loaded one with
  // the form's fields over it.
  const toDefinition = () => {
    const d = JSON.parse(JSON.stringify(base));
    d.name = c.name.value.trim();
    if (c.arch.value) d.arch = c.arch.value;
    const cpu = {...(d.cpu || {})};
    if (c.cpuModel.value) cpu.model = c.cpuModel.value;
    else delete cpu.model;
    const n = parseInt(c.vcpus.value, 10);
    const had = (cpu.sockets || 1) * (cpu.cores || 1) * (cpu.threads || 1);
    if (n && n !== had) Object.assign(cpu, {sockets: 1, cores: n, threads: 1});
    if (Object.keys(cpu).length) d.cpu = cpu;
    else delete d.cpu;
    const m = parseInt(c.memory.value, 10);
    if (m) d.memory = {...(d.memory || {}), sizeMiB: m};
    if (c.display.value === 'none') {
      d.display = {type: 'none'};
    } else if (c.display.value) {
      d.display = {...(d.display || {}), type: c.display.value};
      if (c.video.value) d.display.video = c.video.value;
      else delete d.display.video;
    }
    const nics = [...(d.nics || [])];
    if (c.nicModel.value) {
      nics[0] = {...(nics[0] || {}), model: c.nicModel.value};
      delete nics[0].network;
      delete nics[0].bridge;
      if (c.nicNet.value.trim()) nics[0].network = c.nicNet.value.trim();
    } else {
      nics.splice(0, 1);
    }
    if (nics.length) d.nics = nics;
    else delete d.nics;
    const disks = [...(d.disks || [])];
    if (c.diskSource.value.trim()) disks[0] = {...(disks[0] || {}), source: c.diskSource.value.trim(), bus: c.diskBus.value || undefined};
    else if (disks.length) disks.splice(0, 1);
    if (disks.length) d.disks = disks;
    else delete d.disks;
    if (c.kernelPath.value.trim()) {
      d.kernel = {path: c.kernelPath.value.trim()};
      if (c.kernelInitrd.value.trim()) d.kernel.initrd = c.kernelInitrd.value.trim();
      if (c.kernelCmdline.value.trim()) d.kernel.cmdline = c.kernelCmdline.value.trim();
    } else {
      delete d.kernel;
    }
    const meta = {};
    for (const line of c.metadata.value.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf('=');
      if (i < 0) meta[line.trim()] = '';
      else meta[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (Object.keys(meta).length) d.metadata = meta;
    else delete d.metadata;
    return JSON.parse(JSON.stringify(d));
  };

  // showErrors puts every violation beside its field, and lists them all.
  const showErrors = (errors) => {
    for (const ctl of Object.values(c)) setError(ctl, '', '');
    summary.replaceChildren();
    if (!errors.length) {
      summary.hidden = true;
      return;
    }
    const items = [];
    for (const e of errors) {
      const key = controlFor(e.field);
      const ctl = key && c[key];
      if (ctl) setError(ctl, e.code, e.field ? `${e.message} (${e.field.replace(/^definition\./, '')})` : e.message);
      items.push(h('li', null, ctl ? h('a', {href: `#${ctl.id}`, on: {click: (ev) => { ev.preventDefault(); ctl.focus(); }}}, h('code', null, e.code)) : h('code', null, e.code),
        ` ${e.field ? `${e.field}: ` : ''}${e.message}`));
    }
    summary.append(h('h2', null, errors.length === 1 ? 'The engine refuses this definition:' : `The engine refuses this definition (${errors.length} problems):`), h('ul', null, items));
    summary.hidden = false;
    summary.focus();
  };

  const allowed = can('POST', '/vms');
  const submit = async (start) => {
    const def = toDefinition();
    showErrors([]);
    try {
      const v = await api.post('/vms', {definition: def, cluster: c.cluster.value});
      notice(`VM ${v.name} was created.`);
      if (start) {
        const res = await api.post(`/vms/${api.esc(v.name)}/start`, {});
        notice(res.message || `VM ${v.name} starts.`);
      }
      window.location.hash = `#/vms/${encodeURIComponent(v.name)}`;
    } catch (e) {
      if (e instanceof api.ApiError) showErrors(e.all());
      else notice(errorText(e), 'error');
    }
  };
  const check = async () => {
    try {
      const res = await api.post(`/clusters/${api.esc(c.cluster.value)}/vm-check`, {definition: toDefinition()});
      showErrors(res.errors);
      if (!res.errors.length) notice('The engine accepts this definition.');
    } catch (e) {
      notice(errorText(e), 'error');
    }
  };
  const load = async () => {
    if (!yaml.value.trim()) {
      notice('Paste a definition first.', 'error');
      yaml.focus();
      return;
    }
    try {
      const res = await api.post(`/clusters/${api.esc(c.cluster.value)}/vm-check`, {text: yaml.value});
      if (res.definition) fill(res.definition);
      showErrors(res.errors);
      if (!res.errors.length) notice('The definition is loaded; the engine accepts it.');
      c.name.focus();
    } catch (e) {
      notice(errorText(e), 'error');
    }
  };

  const form = h('form', {class: 'vm-form', novalidate: true, 'aria-describedby': 'vm-errors', on: {submit: (ev) => { ev.preventDefault(); submit(false); }}},
    summary,
    h('fieldset', null, h('legend', null, 'Where and what'),
      field('Cluster', c.cluster), field('Name', c.name), field('Architecture', c.arch), archHint,
      field('CPU model', c.cpuModel), field('vCPUs', c.vcpus), field('Memory (MiB)', c.memory)),
    h('fieldset', null, h('legend', null, 'Devices'),
      field('Display', c.display, 'What the architecture offers; the graphical console shows a VNC display.'), field('Video', c.video),
      field('NIC model', c.nicModel), field('NIC network', c.nicNet),
      field('Disk image', c.diskSource), field('Disk bus', c.diskBus)),
    h('fieldset', null, h('legend', null, 'Boot a kernel directly (optional)'),
      field('Kernel', c.kernelPath), field('Initrd', c.kernelInitrd), field('Kernel command line', c.kernelCmdline)),
    field('Metadata (one key = value a line)', c.metadata),
    h('div', {class: 'actions'},
      h('button', {type: 'submit', id: 'vm-create', class: 'btn btn-primary', disabled: !allowed, title: allowed ? null : 'Your role may not create VMs.'}, 'Create'),
      h('button', {type: 'button', id: 'vm-create-start', class: 'btn', disabled: !allowed, on: {click: () => submit(true)}}, 'Create and start'),
      h('button', {type: 'button', id: 'vm-check', class: 'btn btn-quiet', on: {click: check}}, 'Check')));

  const paste = h('section', {class: 'panel paste', 'aria-labelledby': 'paste-h'},
    h('h2', {id: 'paste-h'}, 'Or paste a definition'),
    field('YAML or JSON (docs/vm-definition.md)', yaml, 'It fills the form; what the form does not show is kept.'),
    h('button', {type: 'button', class: 'btn', id: 'vm-yaml-load', on: {click: load}}, 'Load into the form'));

  replace(main, h('p', {class: 'crumbs'}, h('a', {href: '#/vms'}, 'VMs'), ' / '), h('h1', null, 'New virtual machine'),
    h('div', {class: 'form-grid'}, form, paste));
  if (cluster) await loadOptions();
  c.name.focus();
}

// fromDefinition reads the form's values out of a definition.
function fromDefinition(d) {
  const cpu = d.cpu || {};
  const nic = (d.nics || [])[0];
  const disk = (d.disks || [])[0];
  return {
    cpuModel: cpu.model || '',
    vcpus: d.cpu ? (cpu.sockets || 1) * (cpu.cores || 1) * (cpu.threads || 1) : 0,
    display: d.display ? d.display.type : '',
    video: d.display ? d.display.video || '' : '',
    nicModel: nic ? nic.model || '' : '',
    nicNet: nic ? nic.network || nic.bridge || '' : '',
    diskSource: disk ? disk.source || '' : '',
    diskBus: disk ? disk.bus || '' : '',
  };
}

function replaceOptions(sel, list, value) {
  sel.replaceChildren(...list.map(([v, label]) => h('option', {value: v}, label)));
  sel.value = value;
}
