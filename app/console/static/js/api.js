// The REST API from the browser: the key from sessionStorage as a bearer header, never a cookie or a URL.
const KEY = 'memcubed.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    Object.assign(this, { status, code, details });
  }
}

export async function api(method, path, { body, query, raw, contentType, as } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      for (const item of Array.isArray(v) ? v : [v]) if (item !== null && item !== undefined && item !== '') q.append(k, item);
    }
    if ([...q].length) url += '?' + q;
  }
  const headers = { Authorization: `Bearer ${session.key}` };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = raw ? body : JSON.stringify(body);
    headers['Content-Type'] = raw ? contentType : 'application/json';
  }
  const r = await fetch(url, init);
  if (!r.ok) {
    let e = {};
    try { e = (await r.json()).error || {}; } catch { /* not an error envelope */ }
    throw new ApiError(r.status, e.code || `http_${r.status}`, e.message || r.statusText, e.details || {});
  }
  if (r.status === 204) return null;
  return as === 'blob' ? r.blob() : r.json();
}

export const get = (path, query) => api('GET', path, { query });
export const post = (path, body, query) => api('POST', path, { body, query });
export const patch = (path, body) => api('PATCH', path, { body });
export const put = (path, body) => api('PUT', path, { body });
export const del = (path, query) => api('DELETE', path, { query });

/** Every cube the key sees. */
export async function cubes() { return (await get('/v1/cubes')).cubes; }

/** Save a response body as a file the browser downloads. */
export async function download(path, filename) {
  const blob = await api('GET', path, { as: 'blob' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
