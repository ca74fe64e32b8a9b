// Activation and parametric memory: KV caches per tier with sizes and hits; adapters, versions and metrics.
import { get, post } from './api.js';
import { pickCube } from './common.js';
import { bytes, field, formData, h, input, json, num, short, table, when } from './dom.js';

export async function render(view, ctx, [wanted]) {
  const { id, picker } = await pickCube(ctx, 'activation', wanted);
  view.append(h('h1', null, 'Activation and parametric memory'), picker);
  if (ctx.canTenant('read')) {
    const s = await get('/v1/activations/stats');
    view.append(h('h2', null, 'Activation tiers (this tenant)'),
      table(['Tier', 'Entries#', 'Size#', 'Budget#', 'Available'], Object.entries(s.tiers).map(([t, x]) =>
        [t, num(x.entries), num(bytes(x.bytes)), num(bytes(x.budget_bytes)), x.available ? 'yes' : 'no'])),
      h('p', null, `Since start: ${s.hits} hit(s), ${s.misses} miss(es), ${s.evictions} eviction(s), `,
        `${s.promotions} promotion(s), ${s.demotions} demotion(s). Model: `,
        s.model.loaded ? `${s.model.model_id} on ${s.model.device} (${s.model.precision})` : 'not loaded yet'));
  }
  if (!id) return;
  const [{ activations }, { adapters }] = await Promise.all([
    get(`/v1/cubes/${id}/activations`), get(`/v1/cubes/${id}/adapters`, { include_deleted: true })]);
  if (ctx.can('write')) view.append(buildForm(ctx, id), distillForm(ctx, id));
  view.append(h('h2', null, 'Activation caches of this cube'),
    table(['Prefix', 'Tier', 'Tokens#', 'Size#', 'Hits#', 'Status', 'Source', 'Last used'], activations.map(a => [
      h('span', { class: 'content' }, short(a.text, 80)), a.tier || '', num(a.tokens), num(bytes(a.bytes)), num(a.hits),
      a.status, a.source, when(a.last_used_at)]), `${activations.length} cache(s)`));
  view.append(h('h2', null, 'Adapters (parametric memory)'),
    table(['Name', 'Version#', 'Rank#', 'Size#', 'Source', 'Status', 'Created', 'Metrics'], adapters.map(a => [
      a.name, num(a.version), num(a.rank), num(bytes(a.size_bytes)), a.source, a.status, when(a.created_at),
      Object.keys(a.metrics).length ? h('details', null, h('summary', null, 'metrics'), json(a.metrics)) : '']),
    `${adapters.length} adapter version(s)`));
}

function buildForm(ctx, cubeId) {
  const form = h('form', { class: 'card', 'aria-label': 'Build an activation cache' }, h('div', { class: 'row' },
    field('Cache the top memories for', input('query', { required: true, size: 40 })),
    field('Memories', input('top_k', { type: 'number', min: 1, max: 100, value: 8 })),
    h('div', null, h('button', { type: 'submit' }, 'Build activation cache'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    if (await ctx.act(() => post(`/v1/cubes/${cubeId}/activations`, { query: v.query, top_k: Number(v.top_k) || 8 }),
      a => `Cached ${a.tokens} tokens in the ${a.tier} tier.`)) ctx.refresh();
  });
  return form;
}

function distillForm(ctx, cubeId) {
  const form = h('form', { class: 'card', 'aria-label': 'Distil an adapter' }, h('div', { class: 'row' },
    field('Adapter name', input('name', { value: 'distilled', required: true, maxlength: 200 })),
    field('Steps', input('steps', { type: 'number', min: 1, max: 5000, placeholder: 'server default' })),
    h('div', null, h('button', { type: 'submit' }, 'Distil adapter (job)'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const body = { name: v.name };
    if (v.steps) body.steps = Number(v.steps);
    await ctx.act(() => post(`/v1/cubes/${cubeId}/adapters/distill`, body), j => `Distillation job ${j.id} queued.`);
  });
  return form;
}
