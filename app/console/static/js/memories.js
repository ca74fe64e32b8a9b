// Memories: the timeline by event time a page at a time (the API's cursor), filters, full-text search, and adding
// memories.
import { get, post } from './api.js';
import { pickCube } from './common.js';
import { clear, field, formData, h, input, select, short, table, when } from './dom.js';

const PAGE = 50;
const FILTERS = ['memory_type', 'status', 'user_id', 'agent_id', 'session_id', 'speaker', 'tag', 'occurred_after',
  'occurred_before'];

export async function render(view, ctx, [wanted]) {
  const { id, cube, picker } = await pickCube(ctx, 'memories', wanted);
  view.append(h('h1', null, 'Memories'), picker);
  if (!id) return;
  view.append(h('p', { class: 'muted' }, `${cube.memory_count} memories, ${cube.enrichment_pending} awaiting enrichment.`));
  const list = h('div');
  const filters = h('form', { class: 'card', 'aria-label': 'Filter the timeline' },
    h('h2', null, 'Timeline'),
    h('div', { class: 'row' },
      field('Type', select('memory_type', ['', 'episodic', 'semantic', 'procedural'], '')),
      field('Status', select('status', ['', 'active', 'archived', 'deleted'], '')),
      field('User', input('user_id', { size: 10 })), field('Agent', input('agent_id', { size: 10 })),
      field('Session', input('session_id', { size: 10 })), field('Speaker', input('speaker', { size: 10 })),
      field('Tag', input('tag', { size: 10 })),
      field('Event from', input('occurred_after', { type: 'date' })),
      field('Event to', input('occurred_before', { type: 'date' })),
      h('div', null, h('button', { type: 'submit' }, 'Apply filters'))));
  filters.addEventListener('submit', e => { e.preventDefault(); timeline(ctx, id, list, formData(filters)); });

  const search = h('form', { class: 'card', role: 'search', 'aria-label': 'Full-text search' },
    h('div', { class: 'row' }, field('Full-text search', input('q', { type: 'search', required: true, size: 40 })),
      h('div', null, h('button', { type: 'submit' }, 'Search text'))));
  search.addEventListener('submit', async e => {
    e.preventDefault();
    // BM25 over plain and windowed text: the keyword channels of fine retrieval (active memories only).
    const out = await ctx.act(() => post('/v1/search', { query: formData(search).q, cube_ids: [id], top_k: 50,
      mode: 'fine', channels: ['bm25', 'bm25_window'], graph: false }));
    if (out) clear(list, rows(out.results.map(r => r.memory), `${out.results.length} match(es) in ${out.took_ms} ms`));
  });
  view.append(search, filters, list);
  // Writing comes after reading: the timeline is what the page is for.
  if (ctx.can('write')) view.append(addForm(ctx, id), messageForm(ctx, id));
  await timeline(ctx, id, list, {});
}

async function timeline(ctx, cubeId, list, values) {
  const query = { limit: PAGE, order: 'event' };
  for (const k of FILTERS) if (values[k]) query[k] = k.startsWith('occurred_') ? `${values[k]}T00:00:00Z` : values[k];
  const shown = [];
  const more = h('button', { type: 'button', class: 'secondary' }, 'Load more');
  const load = async cursor => {
    const page = await ctx.act(() => get(`/v1/cubes/${cubeId}/memories`, { ...query, cursor }));
    if (!page) return;
    shown.push(...page.memories);
    clear(list, rows(shown, `${shown.length} shown, by event time${page.next_cursor ? '; more available' : ''}`));
    if (page.next_cursor) {
      more.onclick = () => load(page.next_cursor);
      list.append(more);
    }
  };
  await load(null);
}

function rows(memories, caption) {
  return table(['Event time', 'Type', 'Status', 'Content', 'Speaker', 'Session', 'Tags'], memories.map(m => [
    when(m.occurred_at || m.created_at), m.memory_type, m.status,
    h('a', { href: `#/memory/${m.id}`, class: 'content' }, short(m.content)),
    m.metadata?.speaker ?? '', m.session_id || '', m.tags.map(t => h('span', { class: 'pill' }, t)),
  ]), caption);
}

function admissionText(batch) {
  return batch.admission.map(a => a.status === 'merged'
    ? `merged into ${a.merged_into} (similarity ${a.similarity?.toFixed(3)})`
    : a.status === 'rejected' ? `rejected (${a.reason})` : 'admitted').join('; ') || 'stored';
}

function addForm(ctx, cubeId) {
  const form = h('form', { class: 'card', 'aria-label': 'Add a memory' }, h('h2', null, 'Add a memory'),
    field('Content', h('textarea', { name: 'content', required: true })),
    h('div', { class: 'row' },
      field('Type', select('memory_type', ['episodic', 'semantic', 'procedural'], 'episodic')),
      field('Session', input('session_id', { size: 10 })), field('User', input('user_id', { size: 10 })),
      field('Tags (comma separated)', input('tags', { size: 16 })),
      field('Event time', input('occurred_at', { type: 'datetime-local' })),
      h('div', null, h('button', { type: 'submit' }, 'Add memory'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const memory = { content: v.content, memory_type: v.memory_type,
      tags: v.tags ? v.tags.split(',').map(t => t.trim()).filter(Boolean) : [] };
    for (const k of ['session_id', 'user_id']) if (v[k]) memory[k] = v[k];
    if (v.occurred_at) memory.occurred_at = `${v.occurred_at}:00Z`;
    if (await ctx.act(() => post(`/v1/cubes/${cubeId}/memories`, { memories: [memory] }),
      b => `Memory added: ${admissionText(b)}.`)) ctx.refresh();
  });
  return form;
}

function messageForm(ctx, cubeId) {
  const form = h('form', { class: 'card', 'aria-label': 'Add a conversation turn' },
    h('h2', null, 'Add a conversation turn'),
    h('p', { class: 'muted' }, 'Stored as an episodic memory; a turn asking to forget something is applied as a forget request.'),
    field('Message', h('textarea', { name: 'content', required: true })),
    h('div', { class: 'row' }, field('Session', input('session_id', { required: true, value: 'console', size: 10 })),
      field('Role', select('role', ['user', 'assistant'], 'user')), field('Speaker', input('speaker', { size: 10 })),
      h('div', null, h('button', { type: 'submit' }, 'Add turn'))));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = formData(form);
    const msg = { role: v.role, content: v.content };
    if (v.speaker) msg.speaker = v.speaker;
    if (await ctx.act(() => post(`/v1/cubes/${cubeId}/messages`, { session_id: v.session_id, messages: [msg] }),
      b => b.forget_request_id ? `Forget request applied: ${b.forgotten.length} memory(ies) forgotten. See Hygiene to revert.`
        : `Turn added: ${admissionText(b)}.`)) ctx.refresh();
  });
  return form;
}
