// The console's entry point: sign-in, the section links and a hash router
// (#/routes, #/routes/orders, ...). The key is never part of a URL: the
// hash names only pages. Pages render into #page from the admin API.

import { api, ApiError, keepWarnings, session, signedOut, written } from './api.js';
import { clear, h, visible } from './dom.js';
import * as routes from './routes.js';
import * as policy from './policy.js';
import * as consumers from './consumers.js';
import * as providers from './providers.js';
import * as revocations from './revocations.js';
import * as explain from './explain.js';
import * as outcomes from './outcomes.js';

const SECTIONS = {
  routes: { title: 'Routes', list: routes.listPage, item: policy.policyPage },
  consumers: { title: 'Consumers', list: consumers.listPage, item: consumers.editPage },
  providers: { title: 'Providers', list: providers.listPage, item: providers.editPage },
  revocations: { title: 'Revocations', list: revocations.page },
  explain: { title: 'Explain a token', list: explain.page },
  outcomes: { title: 'Auth outcomes', list: outcomes.page },
};

const $ = (id) => document.getElementById(id);
const signIn = $('sign-in');
const keyInput = $('key');
const keyError = $('key-error');
const app = $('app');
const page = $('page');
const warnings = $('warnings');
let cleanup = null;
let generation = 0;

function parseHash() {
  const m = /^#\/([a-z]+)(?:\/(.+))?$/.exec(location.hash);
  if (!m || !SECTIONS[m[1]]) return null;
  let item = null;
  if (m[2]) {
    try {
      item = decodeURIComponent(m[2]);
    } catch (e) {
      item = m[2];
    }
  }
  return { section: m[1], item };
}

async function render({ focus = true } = {}) {
  if (!session.key()) return;
  const where = parseHash();
  if (!where) {
    // Not a page (e.g. the skip link's #main): leave the page as it is.
    if (!page.firstChild) location.replace('#/routes');
    return;
  }
  const mine = ++generation;
  if (keepWarnings.once) keepWarnings.once = false;
  else showWarnings([]);
  if (cleanup) cleanup();
  cleanup = null;
  const section = SECTIONS[where.section];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.section === where.section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // The item comes from the URL, which anyone can write: shown, never acting.
  document.title = `${section.title}${where.item && where.item !== '+new' ? `: ${visible(where.item)}` : ''} \u00b7 jwtgate console`;
  // data-hash names the page a body shows, so a reader (or a test) can tell
  // the new page from the one it replaces: both may hold the same elements.
  const next = h('div', { class: 'page-body', 'aria-busy': 'true', 'data-hash': location.hash });
  try {
    const fn = where.item && section.item ? section.item : section.list;
    const done = await fn(next, where.item);
    if (mine !== generation) {
      if (typeof done === 'function') done();
      return;
    }
    if (typeof done === 'function') cleanup = done;
  } catch (e) {
    if (mine !== generation) return;
    next.replaceChildren(h('h1', { class: 'page-title', tabIndex: -1 }, section.title),
      h('p', { class: 'status bad', role: 'alert' }, e instanceof ApiError ? `The gateway answered: ${e.message} (${e.status || 'no answer'})` : String(e)));
  }
  next.removeAttribute('aria-busy');
  page.replaceChildren(next);
  const title = page.querySelector('.page-title');
  if (focus && title) title.focus();
}

// What the last write brought, above the page until the next write or page.
function showWarnings(said) {
  if (!said.length) {
    warnings.hidden = true;
    clear(warnings);
    return;
  }
  const dismiss = h('button', { type: 'button', class: 'link' }, 'Dismiss');
  dismiss.addEventListener('click', () => showWarnings([]));
  warnings.replaceChildren(
    h('p', { class: 'warnings-title' }, `Saved, but the gateway warns that ${said.length === 1 ? 'this does' : 'these do'} not do what it probably should:`),
    h('ul', {}, ...said.map((w) => h('li', {}, w))),
    dismiss,
  );
  warnings.hidden = false;
}

written.addEventListener('written', (e) => showWarnings(e.detail));

function showSignIn(message) {
  generation += 1;
  if (cleanup) cleanup();
  cleanup = null;
  outcomes.stop();
  showWarnings([]);
  clear(page);
  app.hidden = true;
  $('sign-out').hidden = true;
  signIn.hidden = false;
  document.title = 'Sign in \u00b7 jwtgate console';
  keyError.textContent = message || '';
  keyError.hidden = !message;
  if (message) keyInput.setAttribute('aria-invalid', 'true');
  else keyInput.removeAttribute('aria-invalid');
  keyInput.focus();
}

function showApp() {
  signIn.hidden = true;
  app.hidden = false;
  $('sign-out').hidden = false;
  outcomes.start();
  if (!parseHash()) location.replace('#/routes');
  render();
}

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = keyInput.value;
  const button = e.submitter || $('sign-in-button');
  if (!key) {
    showSignIn('Enter the admin key.');
    return;
  }
  button.disabled = true;
  keyError.hidden = true;
  try {
    // Any keyed read tells whether the key is right.
    await api('GET', '/admin/v1/routes', undefined, key);
    session.set(key);
    keyInput.value = '';
    keyInput.removeAttribute('aria-invalid');
    showApp();
  } catch (err) {
    keyInput.select();
    showSignIn(err.status === 401
      ? 'Wrong admin key: the gateway refused it (401). Use the value of admin.api_key in the gateway\'s config.'
      : `Cannot check the key: ${err.message}.`);
  } finally {
    button.disabled = false;
  }
});

$('sign-out').addEventListener('click', () => {
  session.clear();
  showSignIn('');
  history.replaceState(null, '', location.pathname);
});

signedOut.addEventListener('signed-out', () => {
  session.clear();
  showSignIn('The gateway no longer accepts this key (401). Sign in again.');
});

window.addEventListener('hashchange', () => render());
document.addEventListener('console:reload', () => render({ focus: false }));

if (session.key()) showApp();
else showSignIn('');
