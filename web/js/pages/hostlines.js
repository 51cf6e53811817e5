// A cluster's hosts as short lines (name, CPU type, status), read from the
// engine when they are shown and drawn a page at a time: a cluster of a
// thousand hosts costs nothing until it is opened.

import {h, replace} from '../dom.js';
import * as api from '../api.js';
import {badge, errorText} from '../ui.js';

// PAGE is how many lines are drawn at a time.
export const PAGE = 100;

// hostLine is one host's line.
export function hostLine(x) {
  return h('li', {dataset: {host: x.name}},
    h('a', {href: `#/hosts/${encodeURIComponent(x.name)}`}, x.name), ' ',
    h('span', {class: 'cpu-type'}, x.cpuType || x.arch || ''), ' ', badge(x.status));
}

// hostLines fills el with the lines of a cluster's hosts (list: the hosts
// already read, else they are read now), PAGE at a time with a button for
// more.
export async function hostLines(el, cluster, list) {
  if (!list) {
    replace(el, h('p', {class: 'loading', role: 'status'}, `Loading the hosts of ${cluster}…`));
    try {
      list = await api.hosts(`cluster=${api.esc(cluster)}`);
    } catch (e) {
      replace(el, h('p', {class: 'error', role: 'alert'}, errorText(e)));
      return;
    }
  }
  const ul = h('ul', {class: 'hosts-list', 'aria-label': `Hosts of ${cluster}`});
  const more = h('button', {type: 'button', class: 'btn btn-quiet more'});
  let shown = 0;
  const next = () => {
    const part = list.slice(shown, shown + PAGE);
    ul.append(...part.map(hostLine));
    shown += part.length;
    more.hidden = shown >= list.length;
    more.textContent = `Show ${Math.min(PAGE, list.length - shown)} more (${shown} of ${list.length} shown)`;
    if (part.length && shown > PAGE) ul.children[shown - part.length].querySelector('a').focus();
  };
  more.addEventListener('click', next);
  replace(el, ul, more);
  next();
}
