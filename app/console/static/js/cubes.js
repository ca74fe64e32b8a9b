// Cubes: counts, enrichment lag, policy; create, rename, fork, snapshot and restore, archive download and import.
import { api, download, get, patch, post, del } from './api.js';
import { bytes, field, formData, h, input, num, select, table, when } from './dom.js';

export async function render(view, ctx, [selected]) {
  const { cubes } = await get('/v1/cubes');
  view.append(h('h1', null, 'Cubes'));
  if (ctx.canTenant('write')) view.append(createForm(ctx), importForm(ctx));
  view.append(table(['Name', 'Memories#', 'Enrichment lag#', 'Forget policy', 'Status', 'Created', ''],
    cubes.map(c => [
      h('a', { href: `#/memories/${c.id}` }, c.name), num(c.memory_count), num(c.enrichment_pending),
      c.forget_policy, c.status, when(c.created_at),
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Manage ${c.name}`,
        onclick: () => ctx.go(`#/cubes/${c.id}`) }, 'Manage'),
    ]), `${cubes.length} cube(s)`));
  const cube = cubes.find(c => c.id === selected);
  if (cube) { ctx.cube.set(cube.id); view.append(await manage(ctx, cube)); }
}

function createForm(ctx) {
  const form = h('form', { class: 'card', 'aria-label': 'Create a cube' },
    h('h2', null, 'Create a cube'),
    h('div', { class: 'row' }, field('Name', input('name', { required: true, maxlength: 200 })),
      field('Description', input('description', { maxlength: 10000 })),
      h('div', null, h('button', { type: 'submit' }, 'Create cube'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const { name, description } = formData(form);
    const cube = await ctx.act(() => post('/v1/cubes', { name, description: description || null }),
      c => `Created cube ${c.name}.`);
    if (cube) ctx.go(`#/cubes/${cube.id}`);
  });
  return form;
}

function importForm(ctx) {
  const file = h('input', { type: 'file', name: 'archive', accept: '.tar,application/x-tar', required: true });
  const form = h('form', { class: 'card', 'aria-label': 'Import a cube archive' },
    h('h2', null, 'Import a cube archive'),
    h('div', { class: 'row' }, field('Archive (.tar)', file), field('New name (optional)', input('name', { maxlength: 200 })),
      h('div', null, h('button', { type: 'submit' }, 'Import archive'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const body = await file.files[0].arrayBuffer();
    const out = await ctx.act(() => api('POST', '/v1/cubes/import-archive',
      { body, raw: true, contentType: 'application/x-tar', query: { name: formData(form).name } }),
    r => `Imported ${r.cube.name}: ${r.counts.memories} memories (embeddings ${r.embeddings}).`);
    if (out) ctx.go(`#/cubes/${out.cube.id}`);
  });
  return form;
}

async function manage(ctx, cube) {
  const box = h('section', { class: 'card', 'aria-label': `Manage ${cube.name}` },
    h('h2', null, `Manage ${cube.name}`),
    h('p', { class: 'muted' }, cube.description || '', ` id ${cube.id}`));
  box.append(h('div', { class: 'row' },
    h('button', { type: 'button', onclick: () => ctx.act(() => download(`/v1/cubes/${cube.id}/archive`, `cube-${cube.name}.tar`)) },
      'Download archive'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.act(() => download(`/v1/cubes/${cube.id}/export`, `cube-${cube.name}.jsonl`)) },
      'Export JSONL')));
  if (ctx.canTenant('write')) {
    const fork = h('form', { 'aria-label': 'Fork' }, h('div', { class: 'row' },
      field('Fork name', input('name', { maxlength: 200, placeholder: `${cube.name}-fork` })),
      h('div', null, h('button', { type: 'submit' }, 'Fork cube'))));
    fork.addEventListener('submit', async e => {
      e.preventDefault();
      const name = formData(fork).name || null;
      const out = await ctx.act(() => post(`/v1/cubes/${cube.id}/fork`, { name }), r => `Forked into ${r.cube.name}.`);
      if (out) ctx.go(`#/cubes/${out.cube.id}`);
    });
    box.append(fork);
  }
  if (ctx.can('write')) {
    const jsonl = h('input', { type: 'file', name: 'jsonl', accept: '.jsonl,application/x-ndjson', required: true });
    const imp = h('form', { 'aria-label': 'Import JSONL' }, h('div', { class: 'row' }, field('Import JSONL export into this cube', jsonl),
      h('div', null, h('button', { type: 'submit' }, 'Import JSONL'))));
    imp.addEventListener('submit', async e => {
      e.preventDefault();
      const body = await jsonl.files[0].text();
      await ctx.act(() => api('POST', `/v1/cubes/${cube.id}/import`, { body, raw: true, contentType: 'application/x-ndjson' }),
        r => `Imported ${r.imported} memories.`);
    });
    const snap = h('form', { 'aria-label': 'Snapshot' }, h('div', { class: 'row' },
      field('Snapshot label', input('label', { maxlength: 200 })),
      h('div', null, h('button', { type: 'submit' }, 'Take snapshot'))));
    snap.addEventListener('submit', async e => {
      e.preventDefault();
      if (await ctx.act(() => post(`/v1/cubes/${cube.id}/snapshots`, { label: formData(snap).label || null }),
        s => `Snapshot of ${s.memory_count} memories taken.`)) ctx.refresh();
    });
    box.append(imp, snap);
  }
  if (ctx.can('admin')) {
    const rename = h('form', { 'aria-label': 'Rename' }, h('div', { class: 'row' },
      field('Rename to', input('name', { required: true, maxlength: 200, value: cube.name })),
      h('div', null, h('button', { type: 'submit' }, 'Rename cube'))));
    rename.addEventListener('submit', async e => {
      e.preventDefault();
      if (await ctx.act(() => patch(`/v1/cubes/${cube.id}`, { name: formData(rename).name }),
        c => `Renamed to ${c.name}.`)) ctx.refresh();
    });
    box.append(rename);
    const policy = select('forget_policy', ['archive', 'purge'], cube.forget_policy);
    const pf = h('form', { 'aria-label': 'Forget policy' }, h('div', { class: 'row' },
      field('A forget request should', policy), h('div', null, h('button', { type: 'submit' }, 'Save'))));
    pf.addEventListener('submit', async e => {
      e.preventDefault();
      if (await ctx.act(() => patch(`/v1/cubes/${cube.id}`, { forget_policy: policy.value }), 'Forget policy saved.')) ctx.refresh();
    });
    box.append(pf, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete cube ${cube.name}?`)) return;
      // A 204 answers null: .then(() => true) says it succeeded.
      if (await ctx.act(() => del(`/v1/cubes/${cube.id}`).then(() => true), 'Cube deleted.')) ctx.go('#/cubes');
    } }, 'Delete cube'));
  }
  const { snapshots } = await get(`/v1/cubes/${cube.id}/snapshots`);
  box.append(h('h2', null, 'Snapshots'), table(['Label', 'Kind', 'Memories#', 'Size#', 'Taken', ''],
    snapshots.map(s => [s.label || '', s.kind, num(s.memory_count), num(bytes(s.size_bytes)), when(s.created_at),
      [ctx.can('admin') ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
        if (await ctx.act(() => post(`/v1/cubes/${cube.id}/snapshots/${s.id}/restore`),
          r => `Restored: ${r.changed} changed, ${r.recreated} recreated, ${r.archived} archived.`)) ctx.refresh();
      } }, 'Restore') : null,
      ctx.can('write') ? h('button', { type: 'button', class: 'danger', 'aria-label': `Delete snapshot ${s.label || s.id}`,
        onclick: async () => {
          if (!confirm(`Delete snapshot ${s.label || s.id}? It cannot be restored afterwards.`)) return;
          // A 204 answers null: act's result says only whether it failed.
          if (await ctx.act(() => del(`/v1/cubes/${cube.id}/snapshots/${s.id}`).then(() => true), 'Snapshot deleted.')) {
            ctx.refresh();
          }
        } }, 'Delete') : null]]), `${snapshots.length} snapshot(s)`));
  return box;
}
