// The routes page: every route with its JWT policy in words. The policy of
// one route is edited on its own page (policy.js).

import { get, seg } from './api.js';
import { code, h, heading, visible } from './dom.js';

export const MODES = {
  every: {
    name: 'Every request',
    short: 'needs a token (neither list is set)',
    long: 'Neither list is set: every request of this route needs a valid token.',
  },
  required: {
    name: 'RequiredPath',
    list: 'required_paths',
    short: 'only matching requests need a token',
    long: 'Only requests matching the RequiredPath list need a valid token; the rest pass unauthenticated.',
  },
  not_required: {
    name: 'NotRequiredPath',
    list: 'not_required_paths',
    short: 'every request needs a token except matching ones',
    long: 'Every request needs a valid token, except those matching the NotRequiredPath list.',
  },
};

export const nonEmpty = (l) => Array.isArray(l) && l.length > 0;

/**
 * What a policy's `anonymous_consumer` does to its mode, in words (an
 * outside audit: "every request needs a valid token" was shown while a
 * request with none ran as the anonymous consumer): `short` for a card,
 * `long` after the mode's own sentence; empty without one.
 */
export function anonymousWords(jwt) {
  const name = jwt && jwt.anonymous_consumer;
  if (!name) return { short: '', long: '' };
  const shown = `\u201c${visible(name)}\u201d`;
  return {
    short: `; with no token, runs as ${shown}`,
    long: ` A request that needs a token and comes with none runs as the anonymous consumer ${shown}; a bad or expired token is still refused.`,
  };
}

export function modeOf(jwt) {
  if (nonEmpty(jwt.required_paths)) return 'required';
  if (nonEmpty(jwt.not_required_paths)) return 'not_required';
  return 'every';
}

export const ENTRY_HELP = 'One METHOD_PATH entry per line. METHOD is GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY; '
  + 'the path starts with /; a trailing * makes it a prefix. Example: GET_/v1/orders*';

export function protectionWords(p) {
  const words = [];
  if (p && p.undeletable) words.push('cannot be deleted');
  if (p && p.immutable) words.push('values cannot be changed');
  return words;
}

export async function listPage(page) {
  const { routes } = await get('/admin/v1/routes');
  page.append(heading('Routes'),
    h('p', { class: 'lede' }, 'Each route\'s JWT policy: who needs a token, the logout path, the blacklist and the protection. Choose a route to edit its policy.'));
  if (!routes.length) {
    page.append(h('p', {}, 'This gateway has no routes.'));
    return;
  }
  const list = h('ul', { class: 'cards' });
  for (const r of routes) {
    const jwt = r.jwt;
    const mode = jwt ? MODES[modeOf(jwt)] : null;
    const prot = jwt ? protectionWords(jwt.protection) : [];
    list.append(h('li', { class: 'card', 'data-route': r.name },
      h('h2', {}, h('a', { href: `#/routes/${seg(r.name)}` }, r.name)),
      h('p', { class: 'paths' }, r.paths.map((p) => [code(p), ' '])),
      jwt
        ? h('p', {}, h('strong', { class: 'mode' }, mode.name), ` \u2014 ${mode.short}${anonymousWords(jwt).short}`)
        : h('p', { class: 'muted' }, 'No JWT policy: requests pass without a token.'),
      jwt && jwt.logout_path ? h('p', {}, 'Logout: ', code(jwt.logout_path),
        jwt.use_jwt_blacklist_revoking ? ' (blacklist on)' : ' (blacklist off)') : null,
      prot.length ? h('p', { class: 'badges' }, prot.map((w) => h('span', { class: 'badge' }, w))) : null));
  }
  page.append(list);
}

