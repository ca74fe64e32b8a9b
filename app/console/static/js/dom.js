// DOM helpers. Data only ever reaches the page as text nodes or attribute values: never through innerHTML.
const SVG_NS = 'http://www.w3.org/2000/svg';
const SVG_TAGS = new Set(['svg', 'g', 'line', 'circle', 'rect', 'text', 'title', 'path']);

export function h(tag, attrs, ...children) {
  const el = SVG_TAGS.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) { el.replaceChildren(); add(el, children); return el; }

let fieldSeq = 0;
/** A labelled form control: {label, name, type, value, options, ...attrs}; returns the wrapper div. */
export function field(label, control) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  return h('div', null, h('label', { for: id }, label), control);
}
export function input(name, attrs = {}) { return h('input', { name, ...attrs }); }
export function select(name, options, value, attrs = {}) {
  return h('select', { name, ...attrs }, options.map(o => {
    const [v, t] = Array.isArray(o) ? o : [o, o === '' ? 'any' : o];
    return h('option', { value: v, selected: v === value }, t);
  }));
}

export function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) if (typeof v === 'string') out[k] = v.trim();
  return out;
}

export function when(ts) { return ts ? new Date(ts).toISOString().replace('T', ' ').slice(0, 16) : ''; }
export function bytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB']; let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
export function short(text, n = 160) { return text.length > n ? text.slice(0, n - 1) + '…' : text; }
export function json(v) { return h('pre', null, JSON.stringify(v, null, 2)); }
export function table(headers, rows, caption) {
  return h('table', null, caption ? h('caption', { class: 'muted' }, caption) : null,
    h('thead', null, h('tr', null, headers.map(x => h('th', { scope: 'col', class: x.endsWith('#') ? 'num' : null },
      x.replace(/#$/, ''))))),
    h('tbody', null, rows.map(r => h('tr', null, r.map(c => c instanceof Node && c.tagName === 'TD' ? c : h('td', null, c))))));
}
export function num(v) { return h('td', { class: 'num' }, v); }

/** Word-level diff (LCS) of two texts, as <del>/<ins>/text nodes. */
export function diff(a, b) {
  const x = a.split(/(\s+)/), y = b.split(/(\s+)/);
  const m = x.length, n = y.length;
  if (m * n > 4_000_000) return [h('del', null, a), h('ins', null, b)];
  const dp = Array.from({ length: m + 1 }, () => new Uint32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = []; let i = 0, j = 0;
  const push = (kind, s) => {
    const last = out[out.length - 1];
    if (last && last.kind === kind) last.s += s; else out.push({ kind, s });
  };
  while (i < m && j < n) {
    if (x[i] === y[j]) { push('=', x[i]); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) push('-', x[i++]); else push('+', y[j++]);
  }
  while (i < m) push('-', x[i++]);
  while (j < n) push('+', y[j++]);
  return out.map(p => p.kind === '=' ? document.createTextNode(p.s) : h(p.kind === '-' ? 'del' : 'ins', null, p.s));
}
