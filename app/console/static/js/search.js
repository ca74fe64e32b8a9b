// Search lab: a query in fast, fine or a budget tier; ranked results with each channel's explain as bars; and the
// /v1/context the agent would get, with its tokens and routing decision.
import { cubes, post } from './api.js';
import { clear, field, formData, h, input, num, select, short, table } from './dom.js';

const TIERS = [['fast', 'fast (dense)'], ['fine', 'fine (hybrid, explained)'], ['budget:low', 'budget: low'],
  ['budget:mid', 'budget: mid'], ['budget:high', 'budget: high'], ['budget:auto', 'budget: auto']];

export async function render(view, ctx) {
  const all = await cubes();
  const chosen = ctx.cube.get();
  const form = h('form', { class: 'card', role: 'search', 'aria-label': 'Search lab query' },
    h('fieldset', null, h('legend', null, 'Cubes'), all.map(c => h('label', null,
      h('input', { type: 'checkbox', name: 'cube', value: c.id, checked: c.id === chosen || all.length === 1 }), ` ${c.name}`))),
    h('div', { class: 'row' }, field('Query', input('query', { required: true, size: 50 })),
      field('Tier', select('tier', TIERS, 'fine')),
      field('Results', input('top_k', { type: 'number', min: 1, max: 200, value: 10 })),
      h('div', null, h('button', { type: 'submit' }, 'Run'))));
  const results = h('section', { 'aria-label': 'Ranked results' });
  const context = h('section', { 'aria-label': 'Agent context' });
  view.append(h('h1', null, 'Search lab'), form, results, context);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const cubeIds = [...form.querySelectorAll('input[name=cube]:checked')].map(x => x.value);
    if (!cubeIds.length) { ctx.flash('Choose at least one cube.', 'error'); return; }
    const { query, tier, top_k: topK } = formData(form);
    const base = { query, cube_ids: cubeIds, top_k: Number(topK) || 10 };
    const budget = tier.startsWith('budget:') ? tier.slice(7) : null;
    clear(results, h('p', { class: 'muted' }, 'Searching…'));
    clear(context);
    const [found, ctxOut] = await Promise.all([
      ctx.act(() => post('/v1/search', budget ? { ...base, budget } : { ...base, mode: tier, explain: true })),
      ctx.act(() => post('/v1/context', { ...base, budget: budget || 'auto' })),
    ]);
    if (found) showResults(results, found);
    if (ctxOut) showContext(context, ctxOut);
  });
}

function showResults(box, found) {
  clear(box, h('h2', null, `Results (${found.results.length}, ${found.took_ms} ms)`));
  if (found.routing) box.append(routing(found.routing));
  const top = Math.max(...found.results.map(r => r.score), 1e-9);
  box.append(h('ol', { class: 'results' }, found.results.map(r => h('li', { class: 'hit' },
    h('a', { href: `#/memory/${r.memory.id}`, class: 'content' }, short(r.memory.content, 300)),
    h('div', { class: 'muted' }, `score ${r.score.toFixed(4)} · ${r.memory.memory_type}`, r.memory.session_id ? ` · session ${r.memory.session_id}` : ''),
    r.explain ? explainChart(r.explain, top) : null))));
}

/** Each channel's reciprocal rank (what it feeds the rank fusion) as a bar, then the fused and graph scores. */
export function explainChart(explain, top) {
  const rows = Object.entries(explain.channels).map(([name, c]) => ({ name, frac: 1 / c.rank, cls: 'bar',
    label: `rank ${c.rank} · score ${c.score.toFixed(3)}` }));
  rows.push({ name: 'fused', frac: explain.fused / top, cls: 'bar fused', label: explain.fused.toFixed(4) });
  if (explain.graph) rows.push({ name: 'graph', frac: explain.graph / top, cls: 'bar graph', label: explain.graph.toFixed(4) });
  const rowH = 18, labelW = 110, barW = 260;
  const summary = rows.map(r => `${r.name} ${r.label}`).join('; ');
  return h('svg', { class: 'explain', width: labelW + barW + 170, height: rows.length * rowH + 4, role: 'img',
    'aria-label': `Explain: ${summary}` }, h('title', null, summary),
  rows.map((r, i) => h('g', { transform: `translate(0 ${i * rowH + 2})` },
    h('text', { x: 0, y: 13 }, r.name),
    h('rect', { class: 'track', x: labelW, y: 2, width: barW, height: 12 }),
    h('rect', { class: r.cls, x: labelW, y: 2, width: Math.max(2, Math.min(1, r.frac) * barW), height: 12 }),
    h('text', { x: labelW + barW + 6, y: 13 }, r.label))));
}

function routing(r) {
  return h('div', { class: 'card' }, h('strong', null, 'Routing: '),
    Object.entries(r.tiers).map(([m, t]) => h('span', { class: 'pill' }, `${m}: ${t}`)),
    h('div', { class: 'muted' }, `cost: ${r.cost.tokens} tokens, ${r.cost.llm_calls} LLM call(s), ${r.cost.ms.total ?? ''} ms`,
      r.cache.hit ? ` · cache hit (${r.cache.kind})` : ''),
    table(['Module', 'Why'], Object.entries(r.reasons)),
    r.warnings.length ? h('p', null, 'Warnings: ', r.warnings.join('; ')) : null);
}

function showContext(box, out) {
  clear(box, h('h2', null, `Context the agent gets (${out.tokens} tokens)`),
    h('p', { class: 'muted' }, out.abstained ? 'Abstained: no memory passed the relevance floor.'
      : out.full_context ? 'Everything fit the budget: the full cube in time order.' : `${out.items.length} item(s).`),
    routing(out.routing),
    table(['Role', 'Score#', 'Content'], out.items.map(i => [i.role, num(i.score == null ? '' : i.score.toFixed(4)),
      h('span', { class: 'content' }, short(i.content, 240))])),
    h('details', null, h('summary', null, 'Context text'), h('pre', null, out.context)));
}
