// Pieces several pages share: choosing a cube.
import { cubes } from './api.js';
import { field, h } from './dom.js';

/** The cubes, the one this page is about (its argument, else the last chosen, else the first) and a picker. */
export async function pickCube(ctx, page, wanted) {
  const all = await cubes();
  const id = [wanted, ctx.cube.get()].find(c => c && all.some(x => x.id === c)) || all[0]?.id || null;
  if (id) ctx.cube.set(id);
  const picker = h('select', { name: 'cube', onchange: e => ctx.go(`#/${page}/${e.target.value}`) },
    all.map(c => h('option', { value: c.id, selected: c.id === id }, c.name)));
  const box = all.length ? h('div', { class: 'row' }, field('Cube', picker))
    : h('p', null, 'No cubes yet. ', h('a', { href: '#/cubes' }, 'Create one on the Cubes page.'));
  return { all, id, cube: all.find(c => c.id === id), picker: box };
}
