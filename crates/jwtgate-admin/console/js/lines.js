// A list of entries edited as lines of a textarea (path rules, one
// METHOD_PATH per line), with a line-number gutter. The API locates a bad
// entry by its index (`required_paths[1]`); the editor knows which line
// each entry came from, so the message is shown beside that line (a mark in
// the gutter and the message in the column to its right) and, for screen
// readers and narrow screens, in a list below tied to the textarea.

import { h, rich, uid, unseenNote } from './dom.js';

export class LinesEditor {
  constructor({ name, label, help, entries = [] }) {
    this.name = name;
    const id = uid('lines');
    const helpId = uid('help');
    this.listId = uid('line-errors');
    this.textarea = h('textarea', {
      id,
      class: 'lines-input',
      wrap: 'off',
      spellcheck: false,
      autocapitalize: 'off',
      autocomplete: 'off',
      'aria-describedby': `${helpId} ${this.listId}`,
      'data-field': name,
      on: { input: () => this.refresh(), scroll: () => this.sync() },
    });
    this.textarea.value = entries.join('\n');
    this.gutter = h('div', { class: 'lines-gutter', 'aria-hidden': 'true' });
    this.notes = h('div', { class: 'lines-notes', 'aria-hidden': 'true' });
    this.list = h('ul', { class: 'line-errors', id: this.listId, hidden: true });
    this.unseen = unseenNote(this.textarea);
    this.errors = new Map(); // line number -> messages
    this.el = h('div', { class: 'lines', 'data-lines': name },
      h('label', { for: id }, label),
      h('p', { class: 'help', id: helpId }, help),
      h('div', { class: 'lines-box' }, this.gutter, this.textarea, this.notes),
      this.unseen,
      this.list);
    this.refresh();
  }

  /** The non-blank lines, trimmed, and the (1-based) line each came from. */
  read() {
    const entries = [];
    const lines = [];
    this.textarea.value.split('\n').forEach((text, i) => {
      const t = text.trim();
      if (t) {
        entries.push(t);
        lines.push(i + 1);
      }
    });
    return { entries, lines };
  }

  entries() {
    return this.read().entries;
  }

  set(entries) {
    this.textarea.value = entries.join('\n');
    this.showErrors([]);
  }

  /** Errors located at `name[i]` (or at the list itself). */
  showErrors(errors) {
    const { entries, lines } = this.read();
    this.errors = new Map();
    const whole = [];
    for (const e of errors) {
      const m = /^.*\[(\d+)\]/.exec(e.field.slice(this.name.length));
      const index = m ? Number(m[1]) : -1;
      if (index >= 0 && index < lines.length) {
        const line = lines[index];
        if (!this.errors.has(line)) this.errors.set(line, []);
        this.errors.get(line).push({ entry: entries[index], message: e.message });
      } else {
        whole.push(e.message);
      }
    }
    this.list.replaceChildren();
    for (const [line, errs] of [...this.errors].sort((a, b) => a[0] - b[0])) {
      for (const e of errs) {
        const go = h('button', {
          type: 'button',
          class: 'link',
          on: { click: () => this.select(line) },
        }, `Line ${line}`);
        this.list.append(h('li', { 'data-line': line }, go, ' ', h('code', {}, e.entry), ': ', rich(e.message)));
      }
    }
    for (const message of whole) this.list.append(h('li', {}, message));
    this.list.hidden = this.list.childElementCount === 0;
    if (this.list.hidden) this.textarea.removeAttribute('aria-invalid');
    else this.textarea.setAttribute('aria-invalid', 'true');
    this.refresh();
  }

  /** Puts the caret on a line (from an error message). */
  select(line) {
    const all = this.textarea.value.split('\n');
    const start = all.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    this.textarea.focus();
    this.textarea.setSelectionRange(start, start + (all[line - 1] || '').length);
  }

  /**
   * The gutter and the notes column follow the lines. Rebuilt only when
   * the errors change; a keystroke adds or drops the rows that changed
   * (an outside audit: rebuilding all of them at each keystroke took
   * 275 ms with 2 000 entries).
   */
  refresh() {
    this.unseen.update();
    const count = this.textarea.value.split('\n').length;
    this.textarea.rows = Math.min(14, Math.max(4, count + 1));
    const rows = Math.max(count, this.textarea.rows);
    if (this.shownErrors !== this.errors) {
      this.shownErrors = this.errors;
      this.gutter.replaceChildren();
      this.notes.replaceChildren();
    }
    while (this.gutter.childElementCount < rows) this.appendRow(this.gutter.childElementCount + 1);
    while (this.gutter.childElementCount > rows) {
      this.gutter.lastElementChild.remove();
      this.notes.lastElementChild.remove();
    }
    this.sync();
  }

  appendRow(line) {
    const errs = this.errors.get(line);
    this.gutter.append(h('div', { class: errs ? 'bad' : '' }, errs ? `! ${line}` : String(line)));
    this.notes.append(h('div', { class: errs ? 'bad' : '', 'data-line': line },
      errs ? `\u2190 ${errs.map((e) => e.message).join('; ')}` : ''));
  }

  sync() {
    this.gutter.scrollTop = this.textarea.scrollTop;
    this.notes.scrollTop = this.textarea.scrollTop;
  }
}
