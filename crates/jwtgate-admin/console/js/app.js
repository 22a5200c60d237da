// The console's entry point: sign-in, the section links and a hash router
// (#/routes, #/routes/orders, ...). The key is never part of a URL: the
// hash names only pages. Pages render into #page from the admin API.

import { api, ApiError, keepWarnings, notice, session, signedOut, written } from './api.js';
import { confirmChoice } from './dialog.js';
import { clear, disable, h, visible } from './dom.js';
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
const loading = $('loading');
let cleanup = null;
let generation = 0;
// The hash of the page shown (or being shown).
let shownHash = '';

// Unsaved edits: each edit form's fields (form[data-edit]) as last shown
// or saved; leaving the page while they differ asks first (an outside
// audit: typed path rules vanished at a click on another section).
const savedFields = new WeakMap();
const fieldsOf = (form) => JSON.stringify([...form.elements]
  .filter((e) => e.matches('input, select, textarea'))
  .map((e) => (e.type === 'checkbox' || e.type === 'radio' ? e.checked : e.value)));
function markSaved(form) {
  savedFields.set(form, fieldsOf(form));
}
const editForms = () => page.querySelectorAll('form[data-edit]');
// Only the page shown counts: one being left (its successor loading) does
// not (a review: a 401 meanwhile brought the page left back).
function unsaved() {
  if (!page.firstChild || page.firstChild.dataset.hash !== shownHash) return false;
  return [...editForms()].some((f) => savedFields.has(f) && savedFields.get(f) !== fieldsOf(f));
}
// A form says it saved with a `console:saved` event; a page whose object
// is gone (deleted) drops its edits with `console:discard`.
page.addEventListener('console:saved', (e) => {
  if (e.target instanceof HTMLFormElement) markSaved(e.target);
});
document.addEventListener('console:discard', () => editForms().forEach(markSaved));

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
  shownHash = location.hash;
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
  // The page being left cannot be used while the next one loads, and a
  // slow answer says so (a 6 s answer left the old page live, unmarked).
  page.inert = true;
  const slow = setTimeout(() => { if (mine === generation) loading.hidden = false; }, 300);
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
    let said = String(e);
    if (e instanceof ApiError) {
      if (!e.status) said = 'The gateway did not answer (is it running, and reachable from this browser?)';
      else if (e.message === `HTTP ${e.status}`) said = `The gateway answered ${e.status}.`;
      else said = `The gateway answered ${e.status}: ${e.message}`;
    }
    next.replaceChildren(h('h1', { class: 'page-title', tabIndex: -1 }, section.title),
      h('p', { class: 'status bad', role: 'alert' }, said));
  } finally {
    clearTimeout(slow);
    if (mine === generation) {
      loading.hidden = true;
      page.inert = false;
    }
  }
  next.removeAttribute('aria-busy');
  page.replaceChildren(next);
  for (const form of page.querySelectorAll('form[data-edit]')) markSaved(form);
  const title = page.querySelector('.page-title');
  if (notice.once) {
    const line = h('p', { class: 'status ok', role: 'status' }, notice.once);
    notice.once = '';
    if (title) title.after(line);
    else next.prepend(line);
  }
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

// The page left for a sign-in the gateway asked for (its key changed)
// while it held unsaved edits: shown again, as it was, after the sign-in
// (an outside audit lost a half-made consumer, secret included).
let keptHash = '';
let keptTitle = '';

function showSignIn(message, { keep = false } = {}) {
  generation += 1;
  // A render cut short leaves nothing behind.
  page.inert = false;
  loading.hidden = true;
  // Kept through a mistyped key too, until a sign-in or a sign-out.
  if (keep) keptHash = unsaved() ? shownHash : '';
  if (keptHash) keptTitle = document.title;
  if (cleanup && !keptHash) cleanup();
  if (!keptHash) cleanup = null;
  outcomes.stop();
  showWarnings([]);
  if (keptHash) message += ' What this page holds, not saved yet, is kept until then.';
  else clear(page);
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
  const resume = keptHash && location.hash === keptHash;
  keptHash = '';
  if (resume) {
    document.title = keptTitle;
    const title = page.querySelector('.page-title');
    for (const old of page.querySelectorAll('.resume-note')) old.remove();
    const line = h('p', { class: 'status info resume-note', role: 'status' }, 'Signed in again: your changes on this page are still here, not saved yet.');
    if (title) title.after(line);
    if (title) title.focus();
    return;
  }
  if (!parseHash()) location.replace('#/routes');
  render();
}

// A page a browser does not count as a secure context came over plain
// HTTP from a name other than loopback's: the key would cross the network
// in clear (`jwtgate check` warns of such an admin.listen too).
$('insecure').hidden = window.isSecureContext;

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = keyInput.value;
  const button = e.submitter || $('sign-in-button');
  if (!key) {
    showSignIn('Enter the admin key.');
    return;
  }
  const enable = disable([button]);
  keyError.hidden = true;
  try {
    // Any keyed read tells whether the key is right. It shows no list, so
    // the versions the kept page read stay: its save is still asked only
    // of them (an outside audit: a save after signing in again went
    // without If-Match and undid another admin's change; after a new key,
    // whose tags all differ, it is refused and the page says to reload).
    await api('GET', '/admin/v1/routes', undefined, key, {}, { forget: false });
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
    enable();
  }
});

$('sign-out').addEventListener('click', () => {
  keptHash = '';
  session.clear();
  showSignIn('');
  history.replaceState(null, '', location.pathname);
});

signedOut.addEventListener('signed-out', () => {
  session.clear();
  showSignIn('The gateway no longer accepts this key (401). Sign in again.', { keep: true });
});

// Asks before unsaved edits are dropped; one question at a time. Leaving
// forgets the edits, then goes to `target`.
let asking = false;
async function mayLeave() {
  const leave = await confirmChoice({
    title: 'Leave without saving?',
    body: [h('p', {}, 'This page has changes that are not saved. They are lost if you leave it.')],
    confirm: 'Leave without saving',
    cancel: 'Stay on this page',
    danger: true,
  });
  if (leave) editForms().forEach(markSaved);
  return leave;
}

// A click on a link to another page asks before the hash changes, so the
// browser's history stays as it was when the answer is to stay.
document.addEventListener('click', async (e) => {
  const a = e.target instanceof Element && e.target.closest('a[href^="#/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.getAttribute('href') === location.hash || !unsaved()) return;
  e.preventDefault();
  if (asking) return;
  asking = true;
  const leave = await mayLeave();
  asking = false;
  if (leave) location.hash = a.getAttribute('href');
});

// Back, forward, or a hash set by script: the hash has changed already; it
// is put back while the question is open (the entry then names this page).
window.addEventListener('hashchange', async () => {
  // Signed out (a page kept behind the sign-in): nothing to ask or show.
  if (!session.key() || location.hash === shownHash) return;
  if (shownHash && parseHash() && unsaved()) {
    const target = location.hash;
    history.replaceState(null, '', shownHash);
    if (asking) return;
    asking = true;
    const leave = await mayLeave();
    asking = false;
    if (leave) location.hash = target;
    return;
  }
  render();
});
window.addEventListener('beforeunload', (e) => {
  if (unsaved()) e.preventDefault();
});
document.addEventListener('console:reload', () => render({ focus: false }));

if (session.key()) showApp();
else showSignIn('');
