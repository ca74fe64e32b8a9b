// The console shell: sign-in, what the key may do, navigation (hash routes) and messages.
import { ApiError, get, session } from './api.js';
import { clear, h } from './dom.js';
import * as activation from './activation.js';
import * as cubesPage from './cubes.js';
import * as graph from './graph.js';
import * as hygiene from './hygiene.js';
import * as memories from './memories.js';
import * as memory from './memory.js';
import * as ops from './ops.js';
import * as search from './search.js';

const RANK = { read: 0, write: 1, admin: 2 };
const PAGES = {
  cubes: ['Cubes', cubesPage], memories: ['Memories', memories], memory: [null, memory], search: ['Search lab', search],
  graph: ['Graph', graph], hygiene: ['Hygiene', hygiene], activation: ['Activation & parametric', activation],
  ops: ['Operations', ops],
};
const main = document.getElementById('main');
const flashBox = document.getElementById('flash');
const signinForm = document.getElementById('signin');
let who = null;
let keepFlash = false;  // a message an action left stays across the navigation it asked for

/** What the page modules get: who is signed in, what they may do, and the shell's helpers. */
const ctx = {
  get who() { return who; },
  /** A tenant key with at least ``need`` on a cube (every cube it sees). */
  can(need) { return who?.scope === 'tenant' && RANK[who.permission] >= RANK[need]; },
  /** A key for the whole tenant with at least ``need`` (creating cubes, forks, imports, key management). */
  canTenant(need) { return this.can(need) && who.cube_ids === null; },
  go(hash) { keepFlash = true; if (location.hash === hash) route(); else location.hash = hash; },
  refresh() { route(); },
  flash(message, kind = 'info') { flashBox.className = kind; flashBox.textContent = message; },
  error(err) {
    if (err instanceof ApiError) {
      const prefix = err.code === 'quota_exceeded' ? 'Quota exceeded' : err.status === 403 ? 'Not allowed'
        : err.status === 401 ? 'Not signed in' : `Error ${err.status}`;
      ctx.flash(`${prefix}: ${err.message}`, 'error');
      if (err.status === 401) signOut();
    } else ctx.flash(String(err), 'error');
  },
  /** Run an action, report its failure, and say what it did (a new action's message replaces the last one). */
  async act(fn, done) {
    if (done) flashBox.textContent = '';
    try { const out = await fn(); if (done) ctx.flash(typeof done === 'function' ? done(out) : done); return out; }
    catch (err) { ctx.error(err); return undefined; }
  },
  cube: {
    get() { return sessionStorage.getItem('memcubed.cube'); },
    set(id) { sessionStorage.setItem('memcubed.cube', id); },
  },
};

function nav(current) {
  const box = document.getElementById('nav');
  const pages = who.scope === 'admin' ? ['ops'] : Object.keys(PAGES).filter(p => PAGES[p][0]);
  clear(box, pages.map(p => h('a', { href: `#/${p}`, 'aria-current': p === current ? 'page' : null }, PAGES[p][0])));
  box.hidden = false;
}

async function route() {
  if (!who) return;
  const [name, ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const page = PAGES[name] ? name : (who.scope === 'admin' ? 'ops' : 'cubes');
  nav(page === 'memory' ? 'memories' : page);
  const view = h('div');
  clear(main, view);
  document.title = `${PAGES[page][0] || 'Memory'} · memcubed console`;
  try { await PAGES[page][1].render(view, ctx, args.filter(Boolean)); }
  catch (err) { ctx.error(err); }
}

async function signIn(key) {
  session.set(key);
  try {
    who = await get('/v1/whoami');
  } catch (err) {
    session.clear();
    ctx.error(err);
    return;
  }
  const scope = who.scope === 'admin' ? 'service admin key'
    : `tenant key · ${who.permission}${who.cube_ids ? ` · ${who.cube_ids.length} cube(s)` : ' · all cubes'}`;
  document.getElementById('who').textContent = scope;
  document.getElementById('signout').hidden = false;
  flashBox.textContent = '';
  route();
}

function signOut() {
  session.clear();
  who = null;
  location.hash = '';
  document.getElementById('nav').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('signout').hidden = true;
  clear(main, signinForm);
  signinForm.reset();
}

/** Switch to another key (a new tenant's, say) without showing it again. */
ctx.signInWith = signIn;

// An API failure no page caught is still shown, never lost in the console log.
window.addEventListener('unhandledrejection', e => {
  if (e.reason instanceof ApiError) { e.preventDefault(); ctx.error(e.reason); }
});

signinForm.addEventListener('submit', e => {
  e.preventDefault();
  signIn(signinForm.elements.key.value.trim());
});
document.getElementById('signout').addEventListener('click', signOut);
window.addEventListener('hashchange', () => {
  if (!keepFlash) flashBox.textContent = '';
  keepFlash = false;
  route();
});
if (session.key) signIn(session.key);
