// Building DOM nodes without HTML strings: every value from the API goes
// in as text, so nothing it returns can become markup or script. No inline
// styles either (the Content-Security-Policy forbids them): looks are
// classes from style.css.

const SVG_NS = 'http://www.w3.org/2000/svg';

let lastId = 0;

/** A fresh id for label/aria wiring. */
export function uid(prefix = 'f') {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

// Characters that change how the text around them reads without showing
// themselves: direction overrides, embeddings and isolates, zero-width
// marks and joiners, the word joiner family, the byte-order mark. The API
// refuses them in names; other values (a custom_id, a key, a subject) may
// hold them, and one could make a value look like another.
const UNSEEN = /[\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;

/** `text` with each such character shown as ⟨U+XXXX⟩. */
export function visible(text) {
  return text.replace(UNSEEN, (c) => `\u27e8U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}\u27e9`);
}

/**
 * Disables `controls` while a request runs (no second submit meanwhile)
 * and gives back a function that enables them again and returns the focus
 * to the one that had it, if the focus fell to the page: a disabled
 * control loses it, and a keyboard user had to Tab from the top again (an
 * outside audit). A message that took the focus meanwhile keeps it.
 */
export function disable(controls) {
  const had = controls.find((c) => c === document.activeElement);
  controls.forEach((c) => { c.disabled = true; });
  return () => {
    controls.forEach((c) => { c.disabled = false; });
    const now = document.activeElement;
    if (had && had.isConnected && (!now || now === document.body)) had.focus();
  };
}

/** Each such character of `text`: `U+200B at position 12` (from 1). */
function unseenPositions(text) {
  const found = [];
  [...text].forEach((c, i) => {
    if (visible(c) !== c) found.push(`${visible(c)} at position ${i + 1}`);
  });
  return found.join(', ');
}

/**
 * A note to put under an input or textarea: while its value holds such
 * characters, the value with each made visible (an input shows its value
 * as the characters direct: an override there reads backwards); for a
 * password field, which must not show its value, only which characters
 * and where. `update()` after setting the value from code; typing updates
 * it.
 */
export function unseenNote(input) {
  const note = h('p', { class: 'unseen-note', hidden: true, 'aria-live': 'polite' });
  note.update = () => {
    const value = input.value;
    const holds = visible(value) !== value;
    note.hidden = !holds;
    note.replaceChildren();
    if (!holds) return;
    if (input.type === 'password') {
      note.append('This value holds characters that change how text reads: ', unseenPositions(value));
    } else {
      note.append('This value holds characters that change how text reads, made visible here: ',
        h('code', {}, value));
    }
  };
  input.addEventListener('input', note.update);
  note.update();
  return note;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(visible(String(child))));
  }
}

/**
 * h('button', { class: 'primary', type: 'submit', on: { click: f } }, 'Save')
 * `class`, `for`, `role`, `aria-*`, `data-*` become attributes; `on` adds
 * listeners; anything else is set as a property (value, checked, hidden...).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'for' || key === 'role' || key === 'list' || key.startsWith('aria-') || key.startsWith('data-')) {
      el.setAttribute(key, value === true ? 'true' : String(value));
    } else {
      el[key] = value;
    }
  }
  append(el, children);
  return el;
}

/** An SVG element; every prop is an attribute. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A page heading that takes focus after navigation. */
export function heading(text, level = 1) {
  return h(`h${level}`, { tabIndex: -1, class: 'page-title' }, text);
}

/** `<code>` around a value. */
export function code(text) {
  return h('code', {}, text);
}

/** A status line (polite live region) whose text can be set. */
export function statusLine() {
  const el = h('p', { role: 'status', class: 'status' });
  el.say = (text, kind = 'ok') => {
    el.className = `status ${text ? kind : ''}`;
    // It may quote what the API said of a value someone wrote.
    el.textContent = visible(text || '');
  };
  return el;
}

/** A labelled checkbox. */
export function checkbox(label, checked, props = {}) {
  const id = uid('c');
  const input = h('input', { type: 'checkbox', id, checked: !!checked, ...props });
  return { input, el: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

export function formatTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return 'never';
  const at = new Date(unixSeconds * 1000);
  // Past what a Date holds (an expiry saturated by an absurd leeway):
  // as good as never.
  if (Number.isNaN(at.getTime())) return 'the end of time';
  return at.toLocaleString();
}

/** Asks the app to render the current page again (after a change). */
export function reload() {
  document.dispatchEvent(new Event('console:reload'));
}

/** Text whose `backticked` parts (as the API's messages write them) become <code>. */
export function rich(text) {
  return String(text).split('`').map((part, i) => (i % 2 ? code(part) : part)).filter((p) => p !== '');
}
