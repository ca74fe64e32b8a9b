// Activation and parametric memory: KV caches per tier with sizes and hits; adapters, versions and metrics.
import { get } from './api.js';
import { pickCube } from './common.js';
import { bytes, h, json, num, short, table, when } from './dom.js';

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
