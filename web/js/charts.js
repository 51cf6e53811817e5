// Small line charts (SVG) of a host's statistics over the last hour.

import {h, s} from './dom.js';

// sparkline draws values (numbers; null for gaps) as a line in a box, with
// a text equivalent for screen readers.
export function sparkline(title, points, value, opts = {}) {
  const w = 240;
  const hgt = 48;
  const max = opts.max || Math.max(1, ...points.map((p) => p.v).filter((v) => v !== null));
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(t1 - t0, 1);
  const xy = points.filter((p) => p.v !== null).map((p) => [
    ((p.t - t0) / span) * (w - 2) + 1,
    hgt - 1 - (Math.min(p.v, max) / max) * (hgt - 2),
  ]);
  const last = points.length ? points[points.length - 1].v : null;
  const summary = points.length
    ? `${title}: ${points.length} samples over the last ${Math.round(span / 60000)} minutes; now ${opts.fmt ? opts.fmt(last) : last}, highest ${opts.fmt ? opts.fmt(Math.max(...points.map((p) => p.v || 0))) : ''}`
    : `${title}: no samples yet`;
  const svg = s('svg', {viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img', 'aria-label': summary, class: 'spark'},
    s('title', null, summary),
    s('rect', {x: 0, y: 0, width: w, height: hgt, class: 'spark-bg'}),
    xy.length > 1 ? s('polyline', {points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '), class: 'spark-line'}) : null,
    xy.length === 1 ? s('circle', {cx: xy[0][0], cy: xy[0][1], r: 2, class: 'spark-dot'}) : null);
  return h('figure', {class: 'chart'}, h('figcaption', null, h('span', null, title), h('strong', null, value)), svg);
}
