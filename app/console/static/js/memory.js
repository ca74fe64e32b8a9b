// One memory: fields, versions with diffs, links and entities, feedback; edit, delete, restore, hard delete.
import { del, get, patch, post } from './api.js';
import { diff, field, formData, h, input, json, num, select, short, table, when } from './dom.js';

export async function render(view, ctx, [id]) {
  const m = await get(`/v1/memories/${id}`);
  ctx.cube.set(m.cube_id);
  const [history, links] = await Promise.all([get(`/v1/memories/${id}/history`), get(`/v1/memories/${id}/links`)]);
  const ref = mid => mid ? h('a', { href: `#/memory/${mid}` }, mid) : '';
  view.append(
    h('p', null, h('a', { href: `#/memories/${m.cube_id}` }, '← Timeline'), ' · ',
      h('a', { href: `#/graph/${m.id}` }, 'Graph neighbourhood')),
    h('h1', null, `Memory (version ${m.version}, ${m.status})`),
    h('div', { class: 'card content', id: 'memory-content' }, m.content),
    h('dl', { class: 'fields' }, Object.entries({
      id: m.id, type: m.memory_type, tier: m.tier, 'event time': when(m.occurred_at), created: when(m.created_at),
      updated: when(m.updated_at), user: m.user_id, agent: m.agent_id, session: m.session_id,
      tags: m.tags.join(', '), importance: m.importance, heat: m.heat.toFixed(3), accesses: m.access_count,
      'merged into': ref(m.merged_into), 'superseded by': ref(m.superseded_by),
      feedback: `useful ${m.feedback.useful} · not useful ${m.feedback.not_useful} · wrong ${m.feedback.wrong}`,
    }).flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v ?? '')])));
  if (Object.keys(m.metadata).length) view.append(h('h2', null, 'Metadata'), json(m.metadata));
  if (Object.keys(m.source).length) view.append(h('h2', null, 'Source'), json(m.source));

  if (m.merged_into || m.superseded_by) view.append(h('h2', null, 'Merge and supersession chain'), await chain(m));
  if (ctx.can('write')) view.append(actions(ctx, m), editForm(ctx, m));

  // Versions, newest first, each diffed against the version after it.
  const versions = [...history.versions].sort((a, b) => b.version - a.version);
  const next = v => v.version + 1 === m.version ? m.content : versions.find(x => x.version === v.version + 1)?.snapshot.content;
  view.append(h('h2', null, 'Versions'), table(['Version#', 'Replaced because', 'Written', 'Change to the next version'],
    [[num(m.version), '(current)', when(m.updated_at), ''], ...versions.map(v => [num(v.version), v.reason, when(v.created_at),
      h('div', { class: 'content diff' }, next(v) === undefined || next(v) === v.snapshot.content
        ? h('span', { class: 'muted' }, v.snapshot.status && v.snapshot.status !== m.status ? `status ${v.snapshot.status}` : 'content unchanged')
        : diff(v.snapshot.content, next(v)))])], `${versions.length + 1} version(s)`));

  view.append(h('h2', null, 'Entities'), h('p', null, links.entities.length
    ? links.entities.map(e => h('span', { class: 'pill' }, e)) : h('span', { class: 'muted' }, 'none')));
  view.append(h('h2', null, 'Links'), table(['Edge', 'Direction', 'Weight#', 'Other memory'],
    links.links.map(l => [h('span', { class: 'pill' }, l.edge.type), l.direction, num(l.edge.weight.toFixed(3)),
      h('a', { href: `#/memory/${l.memory_id}`, class: 'content' }, short(l.content))]), `${links.links.length} link(s)`));
}

/** Follows merged_into / superseded_by pointers to the memory that now stands for this one (at most 10 hops). */
async function chain(m) {
  const steps = [];
  let at = m;
  for (let hop = 0; hop < 10 && (at.merged_into || at.superseded_by); hop++) {
    const how = at.merged_into ? 'merged into' : 'superseded by';
    at = await get(`/v1/memories/${at.merged_into || at.superseded_by}`);
    steps.push(h('li', null, `${how} `, h('a', { href: `#/memory/${at.id}`, class: 'content' }, short(at.content, 120)),
      ` (${at.status})`));
  }
  return h('ol', { class: 'chain' }, steps);
}

function actions(ctx, m) {
  const act = (label, fn, done, cls = 'secondary') => h('button', { type: 'button', class: cls, onclick: async () => {
    if (await ctx.act(fn, done)) ctx.refresh();
  } }, label);
  const box = h('div', { class: 'card', role: 'group', 'aria-label': 'Actions' },
    h('span', null, 'Feedback: '),
    ['useful', 'not_useful', 'wrong'].map(signal => act(signal.replace('_', ' '),
      () => post(`/v1/memories/${m.id}/feedback`, { signal }), 'Feedback recorded.')),
    h('span', null, ' · '),
    m.status === 'active' ? act('Delete (restorable)', () => del(`/v1/memories/${m.id}`), 'Memory deleted (restorable).')
      : act('Restore', () => post(`/v1/memories/${m.id}/restore`), 'Memory restored.'));
  if (ctx.can('admin')) {
    box.append(h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm('Destroy this memory and all its versions? This cannot be undone.')) return;
      if (await ctx.act(() => del(`/v1/memories/${m.id}`, { hard: true }), 'Memory destroyed.')) ctx.go(`#/memories/${m.cube_id}`);
    } }, 'Hard delete'));
  }
  return box;
}

function editForm(ctx, m) {
  const form = h('form', { class: 'card', 'aria-label': 'Edit this memory' }, h('h2', null, 'Edit'),
    field('Content', h('textarea', { name: 'content', required: true, value: m.content })),
    h('div', { class: 'row' },
      field('Type', select('memory_type', ['episodic', 'semantic', 'procedural'], m.memory_type)),
      field('Tags (comma separated)', input('tags', { value: m.tags.join(', ') })),
      field('Importance', input('importance', { type: 'number', min: 0, max: 1, step: 0.05, value: m.importance })),
      field('Reason', input('reason', { value: 'edited in console', maxlength: 200 })),
      h('div', null, h('button', { type: 'submit' }, 'Save new version'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const tags = v.tags ? v.tags.split(',').map(t => t.trim()).filter(Boolean) : [];
    const body = { reason: v.reason || 'edited in console' };
    if (v.content !== m.content) body.content = v.content;
    if (v.memory_type !== m.memory_type) body.memory_type = v.memory_type;
    if (tags.join('\n') !== m.tags.join('\n')) body.tags = tags;
    if (Number(v.importance) !== m.importance) body.importance = Number(v.importance);
    if (Object.keys(body).length === 1) { ctx.flash('Nothing changed.'); return; }
    if (await ctx.act(() => patch(`/v1/memories/${m.id}`, body), r => `Saved version ${r.version}.`)) ctx.refresh();
  });
  return form;
}
