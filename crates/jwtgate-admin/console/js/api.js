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

/**
 * The version (entity tag) of each object this tab last read or wrote, by
 * the object's path: a write to it goes with `If-Match`, so that a page
 * left open while someone else saved is refused (412) rather than undo
 * their change without a word. A route's policy carries its route's tag.
 */
const versions = new Map();
const OBJECT = /^(\/admin\/v1\/(?:routes|consumers|providers)\/[^/?]+)(?:\/jwt)?(?:\?.*)?$/;
const objectOf = (path) => (path.match(OBJECT) || [])[1];

/** The message of a write refused because the object changed meanwhile. */
export const STALE = 'Someone changed this since the page loaded it, and nothing was saved: '
  + 'reload the page to see what the gateway holds now, then make your change again.';

/**
 * `extra`: more request headers (`If-None-Match: *` for a create that must
 * not replace an object of the same name). `forget: false`: a list read
 * that shows nothing (the sign-in's check of the key) keeps the versions
 * the tab read.
 */
export async function api(method, path, body, key = session.key(), extra = {}, { forget = true } = {}) {
  // A config file may hold an object named `.` or `..` (`jwtgate check`
  // warns; the API creates none), and no browser URL can name it: `%2E%2E`
  // and every other spelling are resolved as a path step too. Said
  // plainly rather than sent to another endpoint.
  const step = path.split('?')[0].split('/').slice(1).find((p) => p === '.' || p === '..');
  if (step) {
    throw new Error(`An object named "${step}" cannot be reached from a browser, which reads it as a path step in any spelling: rename it in the config file, or through the admin API with curl (as %2E%2E).`);
  }
  const headers = { ...extra, Accept: 'application/json', 'X-API-KEY': key || '' };
  const object = objectOf(path);
  const read = versions.get(object);
  const conditional = method !== 'GET' && read !== undefined && !('If-None-Match' in extra);
  if (conditional) headers['If-Match'] = read;
  // A list shows every object as it is now: what the tab read of one
  // before no longer conditions a write from the list (a deletion).
  if (forget && method === 'GET' && !object) {
    const list = path.split('?')[0];
    for (const seen of [...versions.keys()]) if (seen.startsWith(`${list}/`)) versions.delete(seen);
  }
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
    const err = new ApiError(resp.status, json);
    if (resp.status === 412 && conditional && !err.errors.length) err.message = STALE;
    throw err;
  }
  if (object) {
    const tag = resp.headers.get('ETag');
    if (tag) versions.set(object, tag);
    else if (method === 'DELETE') versions.delete(object);
  }
  if (method !== 'GET') {
    written.dispatchEvent(new CustomEvent('written', { detail: warningsOf(resp.headers.get('Warning')) }));
  }
  return json;
}

export const seg = (name) => encodeURIComponent(name);

/**
 * Set by a page that moves to another right after a write (a create), so
 * that the warnings the write brought stay above the new page.
 */
export const keepWarnings = { once: false };
/** A line for the next page to show once (`Consumer bob created.`). */
export const notice = { once: '' };

export const get = (path) => api('GET', path);
