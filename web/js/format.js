// Formatting of values for people.

export function mib(v) {
  if (v === undefined || v === null || v === '') return '—';
  const n = Number(v);
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} TiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} GiB`;
  return `${n} MiB`;
}

export function pct(v) {
  return v === undefined || v === null ? '—' : `${Number(v).toFixed(0)} %`;
}

// hasTime tells a time from none (Go's zero time, 0001-01-01, is none).
export function hasTime(t) {
  if (!t) return false;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) || d.getUTCFullYear() > 1;
}

export function time(t) {
  if (!hasTime(t)) return '—';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

export function clock(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

export function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// hostStats reads a host's statistics document (the agent's GET /v1/stats).
export function hostStats(h) {
  const st = h && h.stats && h.stats.host;
  if (!st) return null;
  const used = st.memTotalMiB ? 100 * (st.memTotalMiB - Math.min(st.memAvailableMiB, st.memTotalMiB)) / st.memTotalMiB : null;
  return {cpu: st.cpuUsagePercent, mem: used, load1: st.load1, vms: st.vmsRunning, cpus: st.cpus, memTotal: st.memTotalMiB};
}
