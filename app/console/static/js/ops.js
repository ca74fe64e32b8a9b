// Operations: health, tenants and keys (list, create scoped keys, revoke), quotas, jobs, routing counters.
import { cubes, del, get, post, put } from './api.js';
import { bytes, clear, field, formData, h, input, num, select, table, when } from './dom.js';

export async function render(view, ctx) {
  view.append(h('h1', null, 'Operations'));
  const health = await fetch('/readyz', { cache: 'no-store' }).then(r => r.json()).catch(() => ({ status: 'unreachable', checks: {} }));
  view.append(h('h2', null, 'Health'), h('p', null, h('strong', null, health.status), ' · ',
    Object.entries(health.checks).map(([k, v]) => h('span', { class: 'pill' }, `${k}: ${v ? 'ok' : 'failing'}`))));
  const who = ctx.who;
  const secret = h('div', { 'aria-live': 'polite' });
  if (who.scope === 'admin') {
    const { tenants } = await get('/v1/tenants');
    const keys = keyList(ctx, tenants);
    view.append(h('h2', null, 'Tenants'), tenantForm(ctx, secret), secret,
      table(['Name', 'Id', 'Created'], tenants.map(t => [t.name, t.id, when(t.created_at)]), `${tenants.length} tenant(s)`),
      keyForm(ctx, secret, tenants, [], keys), keys.section);
    await keys.load();
    const limits = quotaPanel(ctx, tenants);
    view.append(h('h2', null, 'Quotas'), limits.section);
    await limits.load();
  } else if (ctx.canTenant('admin')) {
    const keys = keyList(ctx, null);
    view.append(h('h2', null, 'Keys'), secret, keyForm(ctx, secret, null, await cubes(), keys), keys.section);
    await keys.load();
    const limits = quotaPanel(ctx, null);
    view.append(h('h2', null, 'Quotas'), limits.section);
    await limits.load();
  }
  if (who.scope === 'tenant') await jobs(view, ctx);
  if (ctx.canTenant('read')) {
    const r = await get('/v1/routing/stats');
    view.append(h('h2', null, 'Routing'), h('p', null,
      `${r.requests} routed request(s), cache ${r.cache_backend}: ${r.hits} hit(s), ${r.misses} miss(es) (hit rate ${(r.hit_rate * 100).toFixed(1)}%).`),
    table(['Module', 'Tier', 'Chosen#', 'Mean ms#'], Object.entries(r.tiers).flatMap(([m, ts]) => Object.entries(ts)
      .map(([t, n]) => [m, t, num(n), num(r.mean_ms[m]?.[t]?.toFixed(1) ?? '')]))));
  }
}

function showSecret(ctx, box, label, key) {
  clear(box, h('div', { class: 'card' }, h('p', null, `${label}. Copy the key now: it is not shown again.`),
    h('p', { class: 'secret', id: 'new-key' }, key),
    h('button', { type: 'button', onclick: () => ctx.signInWith(key) }, 'Sign in with this key')));
}

function tenantForm(ctx, secret) {
  const form = h('form', { class: 'card', 'aria-label': 'Create a tenant' }, h('div', { class: 'row' },
    field('New tenant name', input('name', { required: true, maxlength: 200 })),
    h('div', null, h('button', { type: 'submit' }, 'Create tenant'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const t = await ctx.act(() => post('/v1/tenants', { name: formData(form).name }));
    if (t) showSecret(ctx, secret, `Tenant ${t.name} created`, t.api_key);
  });
  return form;
}

function keyForm(ctx, secret, tenants, cubeList, keys) {
  const tenantPick = tenants ? field('Tenant', select('tenant', tenants.map(t => [t.id, t.name]), tenants[0]?.id)) : null;
  const scope = tenants ? field('Cube ids (comma separated; empty: whole tenant)', input('cube_ids', { size: 40 }))
    : h('fieldset', null, h('legend', null, 'Cubes (none: the whole tenant)'), cubeList.map(c =>
      h('label', null, h('input', { type: 'checkbox', name: 'cube', value: c.id }), ` ${c.name}`)));
  const form = h('form', { class: 'card', 'aria-label': 'Create an API key' }, h('h2', null, 'Create an API key'),
    h('div', { class: 'row' }, tenantPick, field('Key name', input('name', { maxlength: 200 })),
      field('Permission', select('permission', ['read', 'write', 'admin'], 'read'))), scope,
    h('button', { type: 'submit' }, 'Create key'));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const ids = tenants ? (v.cube_ids || '').split(',').map(s => s.trim()).filter(Boolean)
      : [...form.querySelectorAll('input[name=cube]:checked')].map(x => x.value);
    const body = { permission: v.permission, name: v.name || null };
    if (ids.length) body.cube_ids = ids;
    const k = await ctx.act(() => post(`/v1/tenants/${tenants ? v.tenant : ctx.who.tenant_id}/keys`, body));
    if (!k) return;
    showSecret(ctx, secret, `Key ${k.id} created (${k.permission}${k.cube_ids ? `, ${k.cube_ids.length} cube(s)` : ''})`, k.api_key);
    await ctx.act(() => keys.load(k.tenant_id));
  });
  return form;
}

/** A tenant's keys (for an admin key, of the tenant picked) with a revoke button each; never the keys themselves. */
function keyList(ctx, tenants) {
  const pick = tenants?.length ? select('keys_of', tenants.map(t => [t.id, t.name]), tenants[0].id) : null;
  const box = h('div');
  const load = async tenantId => {
    if (pick && tenantId) pick.value = tenantId;
    const id = pick ? pick.value : ctx.who.tenant_id;
    if (!id) return;
    const { keys } = await get(`/v1/tenants/${id}/keys`);
    clear(box, table(['Name', 'Id', 'Permission', 'Cubes', 'Created', 'Revoked', ''], keys.map(k => [
      k.name || '', k.id, k.permission, k.cube_ids ? h('span', { title: k.cube_ids.join(', ') }, `${k.cube_ids.length} cube(s)`) : 'all',
      when(k.created_at), when(k.revoked_at),
      k.revoked_at ? '' : k.id === ctx.who.key_id ? 'this key' : h('button', { type: 'button', class: 'danger',
        'aria-label': `Revoke key ${k.name || k.id}`, onclick: async () => {
          if (!confirm(`Revoke key ${k.name || k.id}? Anything using it stops working.`)) return;
          if (await ctx.act(() => del(`/v1/keys/${k.id}`), r => `Key ${r.id} revoked.`)) await ctx.act(() => load());
        } }, 'Revoke')]), `${keys.length} key(s), revoked ones included`));
  };
  if (pick) pick.addEventListener('change', () => ctx.act(() => load()));
  const section = h('section', { class: 'card', 'aria-label': 'API keys' }, h('h3', null, 'Existing keys'),
    pick ? h('div', { class: 'row' }, field('Keys of tenant', pick)) : null, box);
  return { section, load };
}

/** A tenant's quotas (for an admin key, of the tenant picked): use against limit with a bar each, and for an
 * admin key a form of overrides (empty: the service default). */
function quotaPanel(ctx, tenants) {
  const pick = tenants?.length ? select('quotas_of', tenants.map(t => [t.id, t.name]), tenants[0].id) : null;
  const box = h('div');
  const amount = (name, n) => name.endsWith('_bytes') ? bytes(n) : String(n);
  let latest = 0;
  const load = async () => {
    const id = pick ? pick.value : ctx.who.tenant_id;
    if (!id) return;
    const seq = ++latest;
    const q = await get(`/v1/tenants/${id}/quotas`);
    if (seq !== latest) return;  // another tenant was picked meanwhile: its answer draws the panel
    const rows = q.quotas.map(x => [x.name, num(amount(x.name, x.used)), num(amount(x.name, x.limit)),
      h('meter', { min: 0, max: Math.max(x.limit, 1), value: Math.min(x.used, Math.max(x.limit, 1)),
        high: Math.max(x.limit, 1) * 0.9, 'aria-label': `${x.name}: ${x.used} of ${x.limit} used` }),
      x.overridden ? 'override' : 'default']);
    const perRequest = `Per request: imports up to ${bytes(q.request_limits.import_bytes)}, contexts up to ` +
      `${q.request_limits.context_tokens} tokens.`;
    clear(box, table(['Quota', 'Used#', 'Limit#', 'Use', 'Limit set by'], rows, `${q.quotas.length} quota(s)`),
      h('p', { class: 'muted' }, perRequest), ctx.who.scope === 'admin' ? overrides(id, q) : null);
  };
  const overrides = (id, q) => {
    const form = h('form', { class: 'card', 'aria-label': 'Quota overrides' },
      h('p', null, 'Overrides for this tenant; leave a field empty for the default.'),
      h('div', { class: 'row' }, q.quotas.map(x => field(`Limit: ${x.name}`, input(x.name, {
        type: 'number', min: 0, step: 1, value: x.overridden ? String(x.limit) : '', placeholder: String(x.default) })))),
      h('button', { type: 'submit' }, 'Save quotas'));
    form.addEventListener('submit', async e => {
      e.preventDefault();
      const body = Object.fromEntries(Object.entries(formData(form)).filter(([, v]) => v !== '').map(([k, v]) => [k, Number(v)]));
      if (await ctx.act(() => put(`/v1/tenants/${id}/quotas`, body), 'Quotas saved.')) await ctx.act(load);
    });
    return form;
  };
  if (pick) pick.addEventListener('change', () => ctx.act(load));
  const section = h('section', { class: 'card', 'aria-label': 'Quotas' },
    pick ? h('div', { class: 'row' }, field('Quotas of tenant', pick)) : null, box);
  return { section, load };
}

async function jobs(view, ctx) {
  const box = h('div');
  const filter = h('form', { class: 'row', 'aria-label': 'Filter jobs' },
    field('Status', select('status', ['', 'queued', 'running', 'done', 'failed', 'cancelled'], '')),
    field('Kind', select('kind', ['', 'consolidate', 'forget', 'distill', 'fuse_activation'], '')),
    h('div', null, h('button', { type: 'submit' }, 'Show jobs')));
  const load = async () => {
    const { jobs: list } = await get('/v1/jobs', { ...formData(filter), limit: 100 });
    clear(box, table(['Kind', 'Status', 'Progress#', 'Attempts#', 'Created', 'Error', ''], list.map(j => [
      j.kind, j.status, num(`${Math.round(j.progress * 100)}%`), num(`${j.attempts}/${j.max_attempts}`), when(j.created_at),
      j.error || '', (j.status === 'queued' || j.status === 'running') && ctx.can('write')
        ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
          if (await ctx.act(() => post(`/v1/jobs/${j.id}/cancel`), 'Job cancelled.')) load();
        } }, 'Cancel') : '']), `${list.length} job(s)`));
  };
  filter.addEventListener('submit', e => { e.preventDefault(); ctx.act(load); });
  view.append(h('h2', null, 'Jobs'), filter, box);
  await load();
}
