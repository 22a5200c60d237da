// The admin API client. The key lives in sessionStorage (this tab only) and
// leaves the page only as the X-API-KEY header of requests to /admin/*;
// never in a URL, never shown.

const STORAGE = 'jwtgate.console.key';

export const session = {
  key: () => sessionStorage.getItem(STORAGE),
  set: (key) => sessionStorage.setItem(STORAGE, key),
  clear: () => sessionStorage.removeItem(STORAGE),
};

/** An answer other than 2xx: the API's `message` and located `errors`. */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && typeof body.message === 'string' && body.message) ||
      (status === 0 ? 'the gateway did not answer' : `HTTP ${status}`);
    super(message);
    this.status = status;
    this.errors = Array.isArray(body && body.errors) ? body.errors : [];
  }
}

/** Raised (and announced) when the key stops being accepted. */
export const signedOut = new EventTarget();

/**
 * Announced after each write the gateway took: `detail` is the config
 * warnings it brought (a setting that does nothing, a route never
 * matched), empty if none. They come as `Warning: 299 jwtgate "..."`
 * headers, which fetch joins with ", ".
 */
export const written = new EventTarget();

export function warningsOf(header) {
  if (!header) return [];
  // Header values reach JavaScript as one character per byte: read the
  // bytes back as the UTF-8 the gateway sent.
  const bytes = Uint8Array.from(header, (c) => c.charCodeAt(0) & 0xff);
  const text = new TextDecoder().decode(bytes);
  return [...text.matchAll(/299 jwtgate "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, '$1'));
}

export async function api(method, path, body, key = session.key()) {
  const headers = { Accept: 'application/json', 'X-API-KEY': key || '' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, null);
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch (e) {
      json = { message: text.slice(0, 200) };
    }
  }
  if (!resp.ok) {
    if (resp.status === 401 && key === session.key()) {
      signedOut.dispatchEvent(new Event('signed-out'));
    }
    throw new ApiError(resp.status, json);
  }
  if (method !== 'GET') {
    written.dispatchEvent(new CustomEvent('written', { detail: warningsOf(resp.headers.get('Warning')) }));
  }
  return json;
}

export const seg = (name) => encodeURIComponent(name);

export const get = (path) => api('GET', path);
