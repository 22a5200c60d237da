// One route's JWT policy: the path mode in words and its switch (with a
// confirmation that names the list it resets), the path lists as lines,
// the logout path, the blacklist toggle, and the protection toggles with
// how to lift them. Saving sends only what changed, as a JSON merge patch
// of /admin/v1/routes/{name}/jwt, so untouched settings stay as they are.

import { api, get, seg } from './api.js';
import {
  checkbox, code, disable, h, heading, plural, reload, statusLine, uid, visible,
} from './dom.js';
import { confirmChoice } from './dialog.js';
import { FieldErrors } from './fields.js';
import { LinesEditor } from './lines.js';
import {
  ENTRY_HELP, MODES, anonymousWords, modeOf, nonEmpty, protectionWords,
} from './routes.js';

/** What a 409 means here, and how to get past it. */
export function conflictHelp(err) {
  const m = err.message || '';
  const steps = (flag, box, what) => [
    h('p', {}, `This policy is protected by `, code(`protection.${flag}`), `: the gateway refused ${what} and changed nothing.`),
    h('p', {}, 'To do it anyway:'),
    h('ol', {},
      h('li', {}, `Untick \u201c${box}\u201d under Protection below. A change of the protection flags alone is always allowed; it is saved at once, on its own.`),
      h('li', {}, `Then ${what === 'the deletion' ? 'delete the policy again' : 'save your change again'}.`),
      h('li', {}, 'Tick the box again if the policy should stay protected.')),
  ];
  let body;
  if (m.includes('protection.immutable')) body = steps('immutable', 'Values cannot be changed', 'the change');
  else if (m.includes('protection.undeletable')) body = steps('undeletable', 'Cannot be deleted', 'the deletion');
  else body = [h('p', {}, 'The gateway refused the change (409) and changed nothing. The config file may hold hand edits that were rejected: fix or revert the file, then try again.')];
  return h('div', { class: 'conflict', role: 'alert' },
    h('p', { class: 'error-title' }, 'Refused: 409 Conflict'),
    h('p', {}, 'The gateway said: ', h('q', {}, m)),
    body);
}

/** What ends a route's open WebSockets besides either side, for its page. */
function webSocketEnds(route) {
  return ` (closed when their token is revoked or its subject cut off${route.websocket_close_at_exp ? ', or when it expires' : ''})`;
}

export async function policyPage(page, name) {
  const route = await get(`/admin/v1/routes/${seg(name)}`);
  page.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/routes' }, '\u2190 All routes')),
    heading(`Route ${route.name}`),
    h('p', { class: 'lede' }, 'Paths ', route.paths.map((p) => [code(p), ' ']),
      route.methods ? ['\u00b7 methods ', route.methods.join(', '), ' '] : null,
      route.hosts ? ['\u00b7 hosts ', route.hosts.join(', '), ' '] : null,
      '\u00b7 upstream ', route.upstream.echo ? 'built-in echo' : (route.upstream.nodes || []).join(', '),
      route.websocket ? ` \u00b7 WebSockets passed${route.jwt ? webSocketEnds(route) : ''}` : null));

  if (!route.jwt) {
    const status = statusLine();
    const add = h('button', {
      type: 'button',
      class: 'primary',
      on: {
        click: async () => {
          try {
            await api('PUT', `/admin/v1/routes/${seg(name)}/jwt`, {});
            reload();
          } catch (e) {
            status.say(e.message, 'bad');
          }
        },
      },
    }, 'Add a JWT policy');
    page.append(h('section', { class: 'panel' },
      h('h2', {}, 'No JWT policy'),
      h('p', {}, 'Requests to this route go upstream without a token. Adding a policy makes every request need a valid token; you can then narrow it with a path list.'),
      add, status));
    return;
  }
  new PolicyEditor(page, route.name, route.jwt);
}

class PolicyEditor {
  constructor(page, name, jwt) {
    this.name = name;
    this.server = jwt;
    this.mode = modeOf(jwt);
    this.errors = new FieldErrors();
    this.status = statusLine();
    this.conflict = h('div', { class: 'conflict-slot' });

    // Who needs a token.
    const groupName = uid('mode');
    this.radios = {};
    const choices = Object.entries(MODES).map(([key, m]) => {
      const id = uid('mode');
      const input = h('input', {
        type: 'radio',
        name: groupName,
        id,
        value: key,
        checked: key === this.mode,
        'aria-describedby': `${id}-d`,
        on: { change: () => this.switchTo(key) },
      });
      this.radios[key] = input;
      return h('div', { class: 'radio' }, input,
        h('label', { for: id }, h('strong', {}, m.name), h('span', { id: `${id}-d`, class: 'hint-text' }, ` \u2014 ${m.short}`)));
    });
    this.modeNow = h('p', { class: 'mode-now', 'data-mode': this.mode });
    this.pending = h('p', { class: 'pending', role: 'status' });
    this.lists = {
      required: new LinesEditor({ name: 'required_paths', label: 'RequiredPath entries', help: ENTRY_HELP, entries: jwt.required_paths || [] }),
      not_required: new LinesEditor({ name: 'not_required_paths', label: 'NotRequiredPath entries', help: ENTRY_HELP, entries: jwt.not_required_paths || [] }),
    };
    this.errors.field('required_paths', null, { show: (e) => this.lists.required.showErrors(e) });
    this.errors.field('not_required_paths', null, { show: (e) => this.lists.not_required.showErrors(e) });
    this.everyNote = h('p', { class: 'muted' }, 'No list to edit: every request of the route needs a token.');

    // Logout and the blacklist.
    const logoutId = uid('logout');
    this.logout = h('input', {
      id: logoutId,
      type: 'text',
      value: jwt.logout_path || '',
      autocomplete: 'off',
      spellcheck: false,
      'aria-describedby': `${logoutId}-h`,
    });
    const blacklist = checkbox('Revoke the token on logout: blacklist it until it expires (use_jwt_blacklist_revoking)', jwt.use_jwt_blacklist_revoking);
    this.blacklist = blacklist.input;
    this.errors.field('logout_path', this.logout);
    this.errors.field('use_jwt_blacklist_revoking', this.blacklist, { after: blacklist.el });

    this.frozen = h('p', { class: 'notice', role: 'note' },
      'This policy is protected by ', code('protection.immutable'),
      ': saving a change is refused until that protection is lifted under Protection below.');
    this.save = h('button', { type: 'submit', class: 'primary' }, 'Save policy');
    const discard = h('button', { type: 'button', class: 'secondary', on: { click: () => this.reset() } }, 'Discard changes');

    const form = h('form', { class: 'policy', 'data-edit': true, noValidate: true, on: { submit: (e) => { e.preventDefault(); this.submit(e.target); } } },
      this.frozen,
      h('section', { class: 'panel' },
        h('h2', {}, 'Who needs a token'),
        this.modeNow,
        h('fieldset', {}, h('legend', {}, 'Path mode'), choices),
        this.pending,
        this.lists.required.el,
        this.lists.not_required.el,
        this.everyNote),
      h('section', { class: 'panel' },
        h('h2', {}, 'Logout'),
        h('label', { for: logoutId }, 'Logout path (METHOD_PATH)'),
        h('p', { class: 'help', id: `${logoutId}-h` }, 'A METHOD_PATH entry, e.g. POST_/v1/logout. A request matching it must carry a valid token; the gateway answers it itself. Leave empty for none.'),
        this.logout,
        blacklist.el),
      this.errors.summary,
      this.conflict,
      h('div', { class: 'actions' }, this.save, discard, this.status));

    page.append(form, this.protectionPanel(), this.dangerPanel(), this.otherSettings());
    this.render();
  }

  /** Radio change: confirm before a mode change that resets a list. */
  async switchTo(next) {
    const from = this.mode;
    if (next === from) return;
    const leaving = MODES[from].list ? this.lists[from].entries() : [];
    if (leaving.length) {
      const listName = MODES[from].name;
      const ok = await confirmChoice({
        title: `Switch to ${MODES[next].name}?`,
        body: [
          h('p', {}, `Only one path list can be set. Switching to ${MODES[next].name} resets the `,
            h('strong', {}, `${listName} list`), ` (${plural(leaving.length, 'entry', 'entries')}):`),
          h('ul', { class: 'entries' }, leaving.slice(0, 8).map((e) => h('li', {}, code(e))),
            leaving.length > 8 ? h('li', {}, `\u2026 and ${leaving.length - 8} more`) : null),
          h('p', {}, 'Nothing changes on the gateway until you save the policy.'),
        ],
        confirm: `Switch and reset ${listName}`,
        cancel: `Keep ${listName}`,
      });
      if (!ok) {
        this.radios[from].checked = true;
        this.radios[from].focus();
        this.status.say(`Kept ${listName}; nothing changed.`, 'info');
        return;
      }
      this.lists[from].set([]);
    }
    this.mode = next;
    this.render();
    const list = this.lists[next];
    if (list) list.textarea.focus();
    else this.radios[next].focus();
  }

  render() {
    // Characters that act without showing (a right-to-left override) are
    // shown, as everywhere else: a rule must not read differently here.
    if (this.json) this.json.textContent = visible(JSON.stringify(this.server, null, 2));
    this.frozen.hidden = !(this.server.protection && this.server.protection.immutable);
    const server = modeOf(this.server);
    this.modeNow.replaceChildren('Now: ', h('strong', {}, MODES[server].name),
      ` \u2014 ${MODES[server].long}${anonymousWords(this.server).long}`);
    this.modeNow.dataset.mode = server;
    for (const [key, editor] of Object.entries(this.lists)) editor.el.hidden = key !== this.mode;
    this.everyNote.hidden = this.mode !== 'every';
    const resets = [];
    for (const key of ['required', 'not_required']) {
      if (key !== this.mode && nonEmpty(this.server[MODES[key].list])) resets.push(MODES[key].name);
    }
    this.pending.textContent = this.mode !== server
      ? `Switching to ${MODES[this.mode].name}${resets.length ? `: saving resets the ${resets.join(' and ')} list` : ''}.`
      : '';
    this.pending.hidden = !this.pending.textContent;
  }

  reset() {
    this.mode = modeOf(this.server);
    this.radios[this.mode].checked = true;
    this.lists.required.set(this.server.required_paths || []);
    this.lists.not_required.set(this.server.not_required_paths || []);
    this.logout.value = this.server.logout_path || '';
    this.blacklist.checked = !!this.server.use_jwt_blacklist_revoking;
    this.errors.clear();
    this.conflict.replaceChildren();
    this.status.say('');
    this.render();
  }

  /** The merge patch: only fields whose value differs from the server's. */
  patch() {
    const patch = {};
    const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    for (const key of ['required', 'not_required']) {
      const field = MODES[key].list;
      const entries = key === this.mode ? this.lists[key].entries() : [];
      const next = entries.length ? entries : null;
      const current = nonEmpty(this.server[field]) ? this.server[field] : null;
      if (!same(next, current)) patch[field] = next;
    }
    const logout = this.logout.value.trim() || null;
    if (!same(logout, this.server.logout_path)) patch.logout_path = logout;
    const revoking = this.blacklist.checked;
    if (revoking !== !!this.server.use_jwt_blacklist_revoking) patch.use_jwt_blacklist_revoking = revoking;
    return patch;
  }

  async submit(form) {
    this.errors.clear();
    this.conflict.replaceChildren();
    const patch = this.patch();
    if (!Object.keys(patch).length) {
      this.status.say('Nothing to save: the form matches the running policy.', 'info');
      return;
    }
    if (this.mode !== 'every' && !this.lists[this.mode].entries().length) {
      this.status.say(`The ${MODES[this.mode].name} list is empty: add an entry, or choose \u201cEvery request\u201d.`, 'bad');
      this.lists[this.mode].textarea.focus();
      return;
    }
    const enable = disable([this.save]);
    this.status.say('Saving\u2026', 'info');
    try {
      this.server = await api('PATCH', `/admin/v1/routes/${seg(this.name)}/jwt`, patch);
      this.reset();
      form.dispatchEvent(new Event('console:saved', { bubbles: true }));
      this.status.say(`Saved. ${MODES[modeOf(this.server)].name} is live for new requests.`, 'ok');
    } catch (e) {
      this.status.say('Not saved.', 'bad');
      if (e.status === 409) this.conflict.replaceChildren(conflictHelp(e));
      else this.errors.show(e, `Not saved: ${e.message}`);
    } finally {
      enable();
    }
  }

  protectionPanel() {
    const p = this.server.protection || {};
    const status = statusLine();
    const undeletable = checkbox('Cannot be deleted (protection.undeletable)', p.undeletable, { 'data-flag': 'undeletable' });
    const immutable = checkbox('Values cannot be changed (protection.immutable)', p.immutable, { 'data-flag': 'immutable' });
    const boxes = [undeletable.input, immutable.input];
    const change = async () => {
      const next = { undeletable: undeletable.input.checked, immutable: immutable.input.checked };
      const enable = disable(boxes);
      try {
        const saved = await api('PATCH', `/admin/v1/routes/${seg(this.name)}/jwt`, { protection: next });
        this.server = { ...this.server, protection: saved.protection };
        this.render();
        // A refusal shown for a protection just lifted is history now.
        if (!saved.protection || !saved.protection.immutable) this.conflict.replaceChildren();
        if (this.dangerSlot && !(saved.protection && saved.protection.undeletable)) this.dangerSlot.replaceChildren();
        const words = protectionWords(saved.protection);
        status.say(`Protection saved: ${words.length ? `the policy ${words.join(' and its ')}` : 'none'}.`, 'ok');
      } catch (e) {
        undeletable.input.checked = !!(this.server.protection || {}).undeletable;
        immutable.input.checked = !!(this.server.protection || {}).immutable;
        status.say(`Protection not changed: ${e.message}`, 'bad');
      } finally {
        enable();
      }
    };
    boxes.forEach((b) => b.addEventListener('change', change));
    return h('section', { class: 'panel protection' },
      h('h2', {}, 'Protection'),
      h('fieldset', {}, h('legend', {}, 'Guard this policy against accidents'), undeletable.el, immutable.el),
      h('p', { class: 'help' },
        'A ticked box makes the gateway refuse (409) deleting the policy, or changing its values. ',
        'To lift a protection, untick it: a change of the protection flags alone is always allowed and is saved at once, on its own. ',
        'Then make your change, and tick the box again if the policy should stay protected.'),
      status);
  }

  dangerPanel() {
    const slot = h('div', { class: 'conflict-slot' });
    this.dangerSlot = slot;
    const status = statusLine();
    const remove = h('button', {
      type: 'button',
      class: 'danger',
      on: {
        click: async () => {
          slot.replaceChildren();
          const ok = await confirmChoice({
            title: `Remove the JWT policy of ${this.name}?`,
            body: [h('p', {}, 'Requests to this route will then go upstream without a token.')],
            confirm: 'Remove the policy',
            cancel: 'Keep the policy',
            danger: true,
          });
          if (!ok) return;
          try {
            await api('DELETE', `/admin/v1/routes/${seg(this.name)}/jwt`);
            reload();
          } catch (e) {
            if (e.status === 409) slot.replaceChildren(conflictHelp(e));
            else status.say(e.message, 'bad');
          }
        },
      },
    }, 'Remove the JWT policy');
    return h('section', { class: 'panel' }, h('h2', {}, 'Remove'), h('p', {}, remove), slot, status);
  }

  otherSettings() {
    this.json = h('pre', { class: 'json' });
    return h('details', { class: 'panel' },
      h('summary', {}, 'All settings of this policy (read only)'),
      h('p', { class: 'help' }, 'Other settings (claims, token sources, providers, authorization rules\u2026) are changed through the admin API: ',
        code(`PATCH /admin/v1/routes/${this.name}/jwt`), '.'),
      this.json);
  }
}
