// Hygiene: forget requests (what they forgot, revert), consolidation and forgetting jobs (what each merged,
// superseded or archived), the forgetting policy and a preview of what it would archive now.
import { get, post, put } from './api.js';
import { pickCube } from './common.js';
import { field, formData, h, input, json, num, short, table, when } from './dom.js';

export async function render(view, ctx, [wanted]) {
  const { id, picker } = await pickCube(ctx, 'hygiene', wanted);
  view.append(h('h1', null, 'Hygiene'), picker);
  if (!id) return;
  const [{ forget_requests: requests }, { jobs }, policy, preview] = await Promise.all([
    get(`/v1/cubes/${id}/forget-requests`, { limit: 100 }), get('/v1/jobs', { cube_id: id, limit: 100 }),
    get(`/v1/cubes/${id}/policy`), get(`/v1/cubes/${id}/policy/preview`, { limit: 100 })]);

  view.append(h('h2', null, 'Forget requests'), table(['Asked', 'Subject', 'Detector', 'Policy', 'Status', 'Forgot', ''],
    requests.map(r => [when(r.created_at), r.subject, r.detector, r.policy, r.status,
      h('span', null, r.memory_ids.map((m, i) => [i ? ', ' : '', h('a', { href: `#/memory/${m}` }, m.slice(0, 8))])),
      r.status === 'applied' && ctx.can('write') ? h('button', { type: 'button', class: 'secondary',
        'aria-label': `Revert forget request about ${r.subject}`, onclick: async () => {
          if (await ctx.act(() => post(`/v1/forget-requests/${r.id}/revert`),
            x => `Reverted: ${x.memory_ids.length} memory(ies) restored.`)) ctx.refresh();
        } }, 'Revert') : '']), `${requests.length} forget request(s)`));

  view.append(h('h2', null, 'Consolidation and forgetting jobs'));
  if (ctx.can('write')) {
    view.append(h('div', { class: 'row' },
      h('button', { type: 'button', onclick: async () => {
        if (await ctx.act(() => post(`/v1/cubes/${id}/consolidate`, {}), 'Consolidation queued.')) ctx.refresh();
      } }, 'Consolidate now'),
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        if (await ctx.act(() => post(`/v1/cubes/${id}/forget`), 'Forgetting queued.')) ctx.refresh();
      } }, 'Apply forgetting policy now')));
  }
  const hygieneJobs = jobs.filter(j => j.kind === 'consolidate' || j.kind === 'forget');
  view.append(table(['Kind', 'Status', 'Trigger', 'Created', 'Finished', 'Result'], hygieneJobs.map(j => [
    j.kind, j.status, j.trigger, when(j.created_at), when(j.finished_at),
    h('details', null, h('summary', null, resultSummary(j)), changed(j.result),
      json(withoutIds(j.error ? { error: j.error, ...j.result } : j.result)))]),
  `${hygieneJobs.length} job(s)`));

  view.append(h('h2', null, 'Forgetting policy'), policyForm(ctx, id, policy),
    h('h2', null, 'What the policy would archive now'), previewTable(preview));
}

const CHANGES = [['merged', 'Merged'], ['superseded', 'Superseded'], ['archived', 'Archived']];

/** The memories a job merged, superseded or archived (its forgetting step's too), as links; lists are capped. */
function changed(result) {
  const step = result.forgetting || {};
  return h('div', { class: 'changes' }, CHANGES.map(([kind, label]) => {
    const ids = result[`${kind}_ids`] || step[`${kind}_ids`] || [];
    const count = typeof result[kind] === 'number' ? result[kind] : step[kind];
    if (!ids.length) return null;
    return h('p', null, `${label} (${count}${count > ids.length ? `, the first ${ids.length} listed` : ''}): `,
      ids.map((m, i) => [i ? ', ' : '', h('a', { href: `#/memory/${m}`, 'aria-label': `${label} memory ${m}` }, m.slice(0, 8))]));
  }));
}

function withoutIds(value) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => !k.endsWith('_ids')).map(([k, v]) => [k, withoutIds(v)]));
}

function previewTable(p) {
  const more = p.total > p.memories.length ? `; the ${p.memories.length} lowest shown` : '';
  return h('section', { 'aria-label': 'Forgetting preview' },
    h('p', { class: 'muted' }, p.policy.enabled ? '' : 'Scheduled forgetting is off; "Apply forgetting policy now" would still archive these. ',
      'Nothing changes until a forgetting job runs.'),
    table(['Retention#', 'Content', 'Event time', 'Why'], p.memories.map(x => [
      num(x.retention.toFixed(3)), h('a', { href: `#/memory/${x.memory.id}`, class: 'content' }, short(x.memory.content)),
      when(x.memory.occurred_at || x.memory.created_at), x.reason]),
    `${p.total} of ${p.active} active memories would be archived now (${p.considered} old enough to be considered)${more}`));
}

function resultSummary(job) {
  const counts = Object.entries(job.result).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${v}`);
  return counts.length ? counts.join(', ') : job.error ? 'failed' : 'details';
}

function policyForm(ctx, cubeId, p) {
  const editable = ctx.can('admin');
  const opt = v => (v == null ? '' : v);
  const form = h('form', { class: 'card', 'aria-label': 'Forgetting policy' },
    h('p', { class: 'muted' }, p.is_default ? 'The default policy (never saved for this cube).' : `Saved ${when(p.updated_at)}.`,
      ' Forgetting archives (restorable); it never destroys.'),
    h('div', { class: 'row' },
      field('Enabled', h('input', { type: 'checkbox', name: 'enabled', checked: p.enabled, disabled: !editable })),
      field('Retention threshold', input('threshold', { type: 'number', min: 0, max: 1, step: 0.01, value: p.threshold, disabled: !editable })),
      field('Max active', input('max_active', { type: 'number', min: 1, value: opt(p.max_active), disabled: !editable })),
      field('TTL (days)', input('ttl_days', { type: 'number', min: 0, step: 'any', value: opt(p.ttl_days), disabled: !editable })),
      field('Half-life (days)', input('half_life_days', { type: 'number', min: 0, step: 'any', value: p.half_life_days, disabled: !editable })),
      field('Min age (hours)', input('min_age_hours', { type: 'number', min: 0, step: 'any', value: p.min_age_hours, disabled: !editable })),
      editable ? h('div', null, h('button', { type: 'submit' }, 'Save policy')) : null));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const n = k => (v[k] === '' || v[k] === undefined ? null : Number(v[k]));
    const body = { enabled: form.elements.enabled.checked, threshold: n('threshold'), max_active: n('max_active'),
      ttl_days: n('ttl_days'), half_life_days: n('half_life_days'), min_age_hours: n('min_age_hours') };
    if (await ctx.act(() => put(`/v1/cubes/${cubeId}/policy`, body), 'Policy saved.')) ctx.refresh();
  });
  return form;
}
