// DOM helpers. Every value from the API reaches the page as text (text
// nodes, attribute values), never as HTML: this module has no innerHTML.

const SVG = 'http://www.w3.org/2000/svg';

// h builds an element: h('a', {href: '#/hosts', class: 'x', on: {click: f}}, 'text', child, [more]).
// Props: class, on (listeners), dataset, and attributes (set with
// setAttribute; false/null/undefined leave them out, true sets ""). The
// properties value, checked, disabled, selected are set as properties.
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

// s builds an SVG element the same way.
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'indeterminate']);

function build(el, props, children) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (PROPS.has(k)) {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children: nodes, text (strings, numbers), arrays of them;
// null, undefined and false are skipped.
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// replace puts children in place of el's.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// text returns "—" for an empty value.
export function text(v) {
  return v === null || v === undefined || v === '' ? '—' : String(v);
}

// ids makes unique element IDs.
let next = 0;
export function uid(prefix) {
  next += 1;
  return `${prefix}-${next}`;
}

// field is a labelled form control with its error slot.
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  const err = h('p', {class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true});
  const hintEl = hint ? h('p', {class: 'hint', id: `${id}-hint`}, hint) : null;
  const described = [hintEl && hintEl.id, err.id].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  return h('div', {class: 'field'}, h('label', {for: id}, label), control, hintEl, err);
}

// setError shows an error (code and text) beside a field made by field().
export function setError(control, code, message) {
  const err = document.getElementById(`${control.id}-error`);
  if (!err) return false;
  if (!code && !message) {
    err.hidden = true;
    err.replaceChildren();
    control.removeAttribute('aria-invalid');
    return true;
  }
  err.hidden = false;
  control.setAttribute('aria-invalid', 'true');
  append(err, [h('code', {class: 'code'}, code), ' ', message]);
  return true;
}

// select makes a <select> of options (strings or [value, label]).
export function select(props, options, value) {
  const el = h('select', props);
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    el.append(h('option', {value: v, selected: v === value}, label));
  }
  if (value !== undefined) el.value = value;
  return el;
}
