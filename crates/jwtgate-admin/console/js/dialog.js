// A confirmation that can be declined: a modal <dialog>, so focus stays in
// it, Escape declines, and the safe choice has the focus first.

import { api } from './api.js';
import { h, reload, statusLine } from './dom.js';

/**
 * Resolves true when the user confirms. `body` is a list of nodes/strings.
 */
export function confirmChoice({ title, body, confirm, cancel = 'Cancel', danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dlg-title-${Date.now()}`;
    const no = h('button', { type: 'button', class: 'secondary', 'data-choice': 'cancel' }, cancel);
    const yes = h('button', { type: 'button', class: danger ? 'danger' : 'primary', 'data-choice': 'confirm' }, confirm);
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      h('div', { class: 'dialog-body' }, body),
      h('div', { class: 'actions' }, no, yes));
    let answered = false;
    const done = (answer) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    no.addEventListener('click', () => done(false));
    yes.addEventListener('click', () => done(true));
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    // Closed any other way: declined, and the promise settles.
    dialog.addEventListener('close', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** A delete button with its confirmation; back to `back` when done. */
export function deleteSection(kind, name, path, back) {
  const status = statusLine();
  const button = h('button', {
    type: 'button',
    class: 'danger',
    on: {
      click: async () => {
        const ok = await confirmChoice({
          title: `Delete ${kind} ${name}?`,
          body: [h('p', {}, `This cannot be undone from the console.`)],
          confirm: `Delete ${kind}`,
          cancel: 'Keep it',
          danger: true,
        });
        if (!ok) return;
        try {
          await api('DELETE', path);
          // The object is gone: its form's edits go with it.
          document.dispatchEvent(new Event('console:discard'));
          if (location.hash === back) reload();
          else location.hash = back;
        } catch (e) {
          const where = e.errors.map((x) => `${x.field}: ${x.message}`).join('; ');
          status.say(`Not deleted: ${e.message}${where ? ` (${where})` : ''}`, 'bad');
        }
      },
    },
  }, `Delete ${kind}`);
  return h('section', { class: 'panel' }, h('h2', {}, 'Delete'), h('p', {}, button), status);
}
