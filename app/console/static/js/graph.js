// Graph: a memory's neighbourhood from the graph routes, drawn as SVG, edge types as colours; a node recentres.
import { get } from './api.js';
import { pickCube } from './common.js';
import { h, short, table, when } from './dom.js';

export const EDGE_TYPES = ['similar', 'shares_entity', 'next_in_session', 'updates', 'contradicts', 'derived_from', 'mentions'];
const MAX_NEIGHBOURS = 40;

export async function render(view, ctx, [memoryId]) {
  if (!memoryId) return chooser(view, ctx);
  const center = await get(`/v1/memories/${memoryId}`);
  ctx.cube.set(center.cube_id);
  const links = await get(`/v1/memories/${memoryId}/links`);
  const nodes = new Map([[center.id, center.content]]);
  for (const l of links.links) if (nodes.size <= MAX_NEIGHBOURS) nodes.set(l.memory_id, l.content);
  // Edges among the neighbours too, so the drawing is the neighbourhood and not only a star.
  const around = await Promise.all([...nodes.keys()].filter(id => id !== center.id)
    .map(id => get(`/v1/memories/${id}/links`).catch(() => ({ links: [] }))));
  const edges = new Map();
  for (const l of [...links.links, ...around.flatMap(a => a.links)]) {
    if (nodes.has(l.edge.source_id) && nodes.has(l.edge.target_id)) edges.set(l.edge.id, l.edge);
  }
  view.append(h('h1', null, 'Graph'),
    h('p', null, 'Neighbourhood of ', h('a', { href: `#/memory/${center.id}` }, short(center.content, 80)),
      ` · ${nodes.size - 1} neighbour(s), ${edges.size} edge(s). Select a node (click or Enter) to centre on it.`),
    ...withLegend(drawing(ctx, center.id, nodes, [...edges.values()]), edges),
    h('details', null, h('summary', null, `The ${edges.size} edges as a table`),
      table(['Type', 'From', 'To', 'Weight#'], [...edges.values()].map(e => [
      h('span', { class: 'pill' }, e.type), short(nodes.get(e.source_id), 60), short(nodes.get(e.target_id), 60),
      h('td', { class: 'num' }, e.weight.toFixed(3))]))));
}

async function chooser(view, ctx) {
  const { id, picker } = await pickCube(ctx, 'graph', null);
  view.append(h('h1', null, 'Graph'), picker);
  if (!id) return;
  const [page, { entities }] = await Promise.all([get(`/v1/cubes/${id}/memories`, { limit: 25, status: 'active' }),
    get(`/v1/cubes/${id}/entities`, { limit: 30 })]);
  view.append(h('h2', null, 'Entities'), h('p', null, entities.length
    ? entities.map(e => h('span', { class: 'pill' }, `${e.name} · ${e.kind} · ${e.mentions}`)) : 'none yet'));
  view.append(h('h2', null, 'Memories'), h('p', null, 'Choose a memory to draw its neighbourhood:'),
    table(['Event time', 'Memory'], page.memories.map(m => [when(m.occurred_at || m.created_at),
      h('a', { href: `#/graph/${m.id}`, class: 'content' }, short(m.content, 120))])));
}

/** The colour key, each type a checkbox that shows or hides its edges. */
function withLegend(svg, edges) {
  const counts = {};
  for (const e of edges.values()) counts[e.type] = (counts[e.type] || 0) + 1;
  const legend = h('fieldset', { class: 'legend' }, h('legend', null, 'Edge types (colour; untick to hide)'),
    EDGE_TYPES.map(t => h('label', null, h('input', { type: 'checkbox', checked: true, name: 'edge-type', value: t,
      onchange: e => svg.classList.toggle(`hide-${t}`, !e.target.checked) }), ' ',
    h('i', { class: `e-${t}`, 'aria-hidden': 'true' }), `${t} (${counts[t] || 0})`)));
  return [legend, svg];
}

function drawing(ctx, centerId, nodes, edges) {
  const W = 1000, H = 600, cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 50;
  const others = [...nodes.keys()].filter(id => id !== centerId);
  const pos = new Map([[centerId, [cx, cy]]]);
  others.forEach((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, others.length) - Math.PI / 2;
    pos.set(id, [cx + R * Math.cos(a), cy + R * Math.sin(a)]);
  });
  // Several edges between one pair are drawn as curves bent apart, so every type stays visible.
  const pairs = new Map();
  const paths = edges.map(e => {
    const key = [e.source_id, e.target_id].sort().join();
    const k = pairs.get(key) || 0;
    pairs.set(key, k + 1);
    const [x1, y1] = pos.get(e.source_id), [x2, y2] = pos.get(e.target_id);
    const len = Math.hypot(x2 - x1, y2 - y1) || 1, bend = (k % 2 ? -1 : 1) * Math.ceil(k / 2) * 28;
    const qx = (x1 + x2) / 2 - ((y2 - y1) / len) * bend, qy = (y1 + y2) / 2 + ((x2 - x1) / len) * bend;
    return h('path', { class: `edge e-${e.type}`, d: `M${x1},${y1} Q${qx},${qy} ${x2},${y2}`,
      'data-type': e.type }, h('title', null, `${e.type} (${e.weight.toFixed(3)})`));
  });
  const label = (isCenter, dx, dy, text) => {
    if (isCenter) return h('text', { x: 0, y: 32, 'text-anchor': 'middle' }, text);
    const len = Math.hypot(dx, dy) || 1;
    const anchor = Math.abs(dx) < R * 0.3 ? 'middle' : dx > 0 ? 'start' : 'end';
    return h('text', { x: (dx / len) * 18, y: (dy / len) * 18 + 4 + (anchor === 'middle' ? Math.sign(dy) * 8 : 0),
      'text-anchor': anchor }, text);
  };
  const circles = [...nodes.entries()].map(([id, content]) => {
    const [x, y] = pos.get(id);
    const go = () => ctx.go(`#/graph/${id}`);
    return h('g', { class: `node${id === centerId ? ' center' : ''}`, tabindex: 0, role: 'link',
      'aria-label': `Memory: ${short(content, 100)}`, 'data-id': id, transform: `translate(${x} ${y})`,
      onclick: go, onkeydown: e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(); } } },
    h('title', null, content),
    h('circle', { r: id === centerId ? 16 : 11 }),
    label(id === centerId, x - cx, y - cy, short(content, 34)));
  });
  return h('svg', { class: 'graph', viewBox: `0 0 ${W} ${H}`, role: 'group',
    'aria-label': 'Memory graph neighbourhood' }, paths, circles);
}
