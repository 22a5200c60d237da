#!/usr/bin/env bash
# Checks the Debian package the hard way (run by ./test, so by CI):
#   1. builds it (packaging/build-deb.sh);
#   2. inspects it: the files, their modes, the conffile, the dependencies;
#   3. installs it with dpkg -i in a clean Debian 12 root (debootstrap,
#      minbase + systemd; cached under ~/.cache/jwtgate), then checks that the
#      files land where the unit expects them, that `systemd-analyze verify`
#      accepts the unit, that the unit's own commands work as its user on the
#      default config (check, then run: the embedded store opens in the
#      StateDirectory and a request gets its 401);
#   4. boots that root with its own systemd (systemd-nspawn --boot) and
#      checks the service as the unit runs it: an admin write, a reload,
#      upgrades (restarted onto the new version when it loads the config,
#      left serving when it does not; a dpkg-statoverride kept), a stop;
#   5. purges it (all gone but the user), and installs it again beside a
#      jwtgate group made beforehand, and beside a jwtgate user made
#      beforehand without one.
# Needs root (chroot) and debootstrap (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || fail "needs root (dpkg -i in a chroot)"
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "== installing debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

packaging/build-deb.sh
target=${CARGO_TARGET_DIR:-target}
deb=$(ls -t "$target"/debian/jwtgate_*.deb | head -1)
echo "== inspecting $deb"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/jwtgate ./etc/jwtgate/jwtgate.yaml ./usr/lib/systemd/system/jwtgate.service \
         ./usr/share/man/man1/jwtgate.1.gz ./usr/share/bash-completion/completions/jwtgate \
         ./usr/share/zsh/vendor-completions/_jwtgate ./usr/share/fish/vendor_completions.d/jwtgate.fish; do
  grep -q " $f\$" <<<"$listing" || fail "$f is not in the package"
done
grep -q -- '-rw-r----- .* ./etc/jwtgate/jwtgate.yaml$' <<<"$listing" || fail "the config is not 0640 in the package"
[[ $(dpkg-deb -f "$deb" Package) == jwtgate ]] || fail "package name"
dpkg-deb -e "$deb" "$target/debian/control-check"
grep -qx /etc/jwtgate/jwtgate.yaml "$target/debian/control-check/conffiles" || fail "the config is not a conffile"
rm -rf "$target/debian/control-check"
# The copyright file in DEP-5 form: a Files paragraph and its licence's.
copyright=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/jwtgate/copyright)
grep -qx 'Files: \*' <<<"$copyright" || fail "the copyright file has no Files paragraph"
grep -q '/usr/share/common-licenses/Apache-2.0' <<<"$copyright" || fail "the copyright file does not point to the licence"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/jwtgate
base="$cache/bookworm-minbase-systemd-procps.tar"
if [[ ! -f $base ]]; then
  echo "== debootstrap Debian 12 (once; cached in $base)"
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include=systemd,passwd,procps bookworm "$tmp" http://deb.debian.org/debian
  tar -C "$tmp" -cf "$base.part" .
  rm -rf "$tmp"
  mv "$base.part" "$base"
fi

root=$(mktemp -d /tmp/jwtgate-chroot.XXXXXX)
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$base"
chmod 0755 "$root"   # it is /: every user traverses it
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/jwtgate.deb"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== dpkg -i in the Debian 12 root"
in_root dpkg -i /tmp/jwtgate.deb
in_root test -x /usr/bin/jwtgate || fail "no /usr/bin/jwtgate"
in_root getent passwd jwtgate >/dev/null || fail "no jwtgate user"
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 770" ]] || fail "/etc/jwtgate is $(in_root stat -c '%U:%G %a' /etc/jwtgate)"
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate/jwtgate.yaml) == "root:jwtgate 660" ]] || fail "the config's owner/mode"
in_root test -L /etc/systemd/system/multi-user.target.wants/jwtgate.service || fail "the unit is not enabled"
unit=/usr/lib/systemd/system/jwtgate.service
for cmd in $(in_root sed -n 's/^Exec[A-Za-z]*=\([^ ]*\).*/\1/p' "$unit"); do
  in_root test -x "$cmd" || fail "the unit runs $cmd, which is not there"
done
echo "== systemd-analyze verify"
in_root systemd-analyze verify --man=no "$unit"   # no man-db in minbase: the page is checked below
in_root zcat /usr/share/man/man1/jwtgate.1.gz | grep -q '^\.SH ENVIRONMENT' || fail "man page"
# Compressed, with a Debian changelog (Policy 12.3, 12.7).
for doc in README.md.gz SECURITY.md.gz SPEC.md.gz changelog.Debian.gz; do
  in_root test -s "/usr/share/doc/jwtgate/$doc" || fail "/usr/share/doc/jwtgate/$doc"
  in_root gzip -t "/usr/share/doc/jwtgate/$doc" || fail "/usr/share/doc/jwtgate/$doc is not gzip"
done

echo "== the unit's commands, as its user, on the default config"
in_root install -d -o jwtgate -g jwtgate -m 0700 /var/lib/jwtgate   # what StateDirectory= does
in_root setpriv --reuid=jwtgate --regid=jwtgate --clear-groups --inh-caps=-all \
  /usr/bin/jwtgate check --config /etc/jwtgate/jwtgate.yaml
port=$(free_port)
# The default config with only its port changed (the host may use 8080).
in_root sh -c "sed 's/127.0.0.1:8080/127.0.0.1:$port/' /etc/jwtgate/jwtgate.yaml > /etc/jwtgate/port-check.yaml"
in_root chown root:jwtgate /etc/jwtgate/port-check.yaml
in_root chmod 0640 /etc/jwtgate/port-check.yaml
chroot "$root" setpriv --reuid=jwtgate --regid=jwtgate --clear-groups --inh-caps=-all \
  /usr/bin/jwtgate run --config /etc/jwtgate/port-check.yaml 2>"$root/tmp/run.log" &
pid=$!
code=000
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/anything" || true)
  [[ $code != 000 ]] && break
  sleep 0.1
done
kill "$pid"; wait "$pid" || true
[[ $code == 401 ]] || { cat "$root/tmp/run.log" >&2; fail "the default config answered $code, not 401"; }
in_root test -f /var/lib/jwtgate/revocations.redb || in_root ls /var/lib/jwtgate | grep -q . || fail "nothing in the StateDirectory"
in_root rm /etc/jwtgate/port-check.yaml

echo "== an upgrade acts on no link the service planted"
# The service may write in /etc/jwtgate. A link it puts in the config's
# place must not make the upgrade's root change the file it points to.
in_root sh -c 'umask 077; echo secret > /root/victim'
in_root cp -a /etc/jwtgate/jwtgate.yaml /tmp/jwtgate.yaml.orig
in_root setpriv --reuid=jwtgate --regid=jwtgate --clear-groups --inh-caps=-all \
  ln -sfn /root/victim /etc/jwtgate/jwtgate.yaml
in_root dpkg -i --force-confold /tmp/jwtgate.deb
[[ $(in_root stat -c '%U:%G %a' /root/victim) == "root:root 600" ]] \
  || fail "the upgrade changed the file a planted link points to: $(in_root stat -c '%U:%G %a' /root/victim)"
in_root mv -f /tmp/jwtgate.yaml.orig /etc/jwtgate/jwtgate.yaml
# An operator's own owner and mode survive an upgrade.
in_root chmod 0640 /etc/jwtgate/jwtgate.yaml
in_root dpkg -i --force-confold /tmp/jwtgate.deb
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate/jwtgate.yaml) == "root:jwtgate 640" ]] \
  || fail "the upgrade reset the operator's mode: $(in_root stat -c '%U:%G %a' /etc/jwtgate/jwtgate.yaml)"

echo "== under systemd (systemd-nspawn --boot): the unit as it runs"
# The unit's sandbox only shows under systemd: its system-call filter had
# the admin API's write-back (chown) kill the node. Boot the root with its
# own systemd, turn the admin API on, and check that the service starts,
# takes a change through the API (written back, no restart), reloads and
# stops cleanly.
if ! command -v systemd-nspawn >/dev/null 2>&1; then
  echo "== installing systemd-container (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd-container
fi
port=$(free_port)
admin=$(free_port)
key=check-deb-admin-key-0123456789abcdefghij
in_root sh -c "umask 077; echo JWTGATE_ADMIN_KEY=$key > /etc/default/jwtgate"
in_root sed -i -e "s/127.0.0.1:8080/127.0.0.1:$port/" \
  -e 's/^# admin:/admin:/' -e "s/^#   listen: \"127.0.0.1:9180\"/  listen: \"127.0.0.1:$admin\"/" \
  -e 's/^#   api_key: /  api_key: /' /etc/jwtgate/jwtgate.yaml
in_root sh -c 'set -a; . /etc/default/jwtgate; jwtgate check --config /etc/jwtgate/jwtgate.yaml'
machine=jwtgate-check-$$
umount "$root/proc"   # the container mounts its own
systemd-nspawn -q -D "$root" --machine="$machine" --register=no --keep-unit --boot --console=pipe \
  >"$target/debian/nspawn.log" 2>&1 </dev/null &
nspawn=$!
init=""
stop_container() {
  kill "$nspawn" 2>/dev/null || true
  # The container powers off (the service gets its stop timeout, 45 s).
  for _ in $(seq 1 500); do kill -0 "$nspawn" 2>/dev/null || return 0; sleep 0.1; done
  # Killing a PID namespace's init kills everything in it; nspawn alone
  # would leave the container running.
  [[ -n $init ]] && kill -9 "$init" 2>/dev/null || true
  kill -9 "$nspawn" 2>/dev/null || true
  wait "$nspawn" 2>/dev/null || true
}
cleanup() {
  stop_container
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
# The container's init: the systemd that systemd-nspawn started (not a
# short-lived child of its own setting up the container).
for _ in $(seq 1 100); do
  init=$(pgrep -x systemd -P "$nspawn" | head -1 || true)
  [[ -n $init ]] && break
  sleep 0.1
done
[[ -n $init ]] || { cat "$target/debian/nspawn.log" >&2; fail "systemd-nspawn started no container"; }
inside() { nsenter -t "$init" -m -u -i -n -p -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
journal() { inside journalctl -u jwtgate --no-pager >&2 || cat "$target/debian/nspawn.log" >&2 || true; }
state=""
for _ in $(seq 1 300); do
  state=$(inside systemctl is-active jwtgate 2>/dev/null || true)
  [[ $state == active || $state == failed ]] && break
  sleep 0.1
done
[[ $state == active ]] || { journal; fail "the service is $state under systemd"; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/anything" || true)
[[ $code == 401 ]] || fail "under systemd, a request without a token got $code, not 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-API-KEY: $key" -H 'Content-Type: application/json' \
  -d '{"jwt": {"key": "check-deb", "secret": "check-deb-secret-0123456789abcdefghij"}}' \
  "http://127.0.0.1:$admin/admin/v1/consumers/check-deb" || true)
[[ $code == 201 ]] || { journal; fail "an admin write under systemd got $code, not 201"; }
in_root grep -q 'username: check-deb' /etc/jwtgate/jwtgate.yaml || fail "the admin write was not written back"
inside systemctl reload jwtgate || { journal; fail "systemctl reload failed"; }
sleep 1
[[ $(inside systemctl show -p NRestarts --value jwtgate) == 0 && $(inside systemctl is-active jwtgate) == active ]] \
  || { journal; fail "the service restarted or stopped under systemd"; }
main_pid() { inside systemctl show -p MainPID --value jwtgate; }
serving() {
  [[ $(inside systemctl is-active jwtgate) == active ]] || return 1
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/anything" || true) == 401 ]]
}
echo "== an upgrade restarts the node onto the new version when it loads the config"
cp "$deb" "$root/root/jwtgate.deb"   # the booted root has /tmp of its own
before=$(main_pid)
inside dpkg -i --force-confold /root/jwtgate.deb >/dev/null || { journal; fail "the upgrade failed"; }
after=$(main_pid)
[[ $after != "$before" && $after != 0 ]] || { journal; fail "the upgrade did not restart the node ($before, $after)"; }
serving || { journal; fail "the node does not serve after the upgrade"; }
echo "== ... and leaves it serving when the new version refuses the config"
in_root sed -i 's/^listen:/lissten:/' /etc/jwtgate/jwtgate.yaml
said=$(inside dpkg -i --force-confold /root/jwtgate.deb 2>&1) || { echo "$said" >&2; fail "the upgrade failed"; }
grep -q 'the running node keeps serving' <<<"$said" \
  || { echo "$said" >&2; fail "the upgrade did not say it left the node running"; }
# The check's own summary line (the node's file watcher logs the problem too,
# but not this line).
said=$(inside journalctl -u jwtgate --no-pager || true)
grep -q 'jwtgate.yaml: [0-9]* problem(s)' <<<"$said" \
  || { journal; fail "the journal does not say why the upgrade left the node running"; }
[[ $(main_pid) == "$after" ]] || { journal; fail "the upgrade restarted a node whose config the new version refuses"; }
serving || { journal; fail "the node stopped serving at an upgrade it could not restart"; }
in_root sed -i 's/^lissten:/listen:/' /etc/jwtgate/jwtgate.yaml
echo "== an operator's mode on /etc/jwtgate (dpkg-statoverride) survives an upgrade"
inside dpkg-statoverride --update --add root jwtgate 0750 /etc/jwtgate
inside dpkg -i --force-confold /root/jwtgate.deb >/dev/null || { journal; fail "the upgrade failed"; }
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 750" ]] \
  || fail "the upgrade reset /etc/jwtgate over a statoverride: $(in_root stat -c '%U:%G %a' /etc/jwtgate)"
inside dpkg-statoverride --remove /etc/jwtgate
inside chmod 0770 /etc/jwtgate
inside systemctl stop jwtgate || { journal; fail "systemctl stop failed"; }
[[ $(inside systemctl show -p Result --value jwtgate) == success ]] \
  || { journal; fail "the service did not stop cleanly"; }
echo "== a config that does not load fails the start once, not restarted"
in_root sed -i 's/^listen:/lissten:/' /etc/jwtgate/jwtgate.yaml
# Only what this start logged: the upgrade above logged the same problem.
since=$(inside date '+%Y-%m-%d %H:%M:%S')
sleep 1
inside systemctl start jwtgate 2>/dev/null && { journal; fail "the service started on a config that does not load"; }
sleep 3   # RestartSec=2s: a restart would have come
[[ $(inside systemctl show -p NRestarts --value jwtgate) == 0 && $(inside systemctl show -p ExecMainStatus --value jwtgate) == 2 ]] \
  || { journal; fail "a config that does not load was restarted, or did not exit 2"; }
# Read whole first: grep -q leaving early would fail the pipe (pipefail).
said=$(inside journalctl -u jwtgate --no-pager --since "$since" || true)
grep -q 'lissten: unknown key' <<<"$said" \
  || { journal; fail "the journal does not say why the service did not start"; }
in_root sed -i 's/^lissten:/listen:/' /etc/jwtgate/jwtgate.yaml
inside systemctl reset-failed jwtgate 2>/dev/null || true
stop_container
mount -t proc proc "$root/proc"
in_root rm -f /etc/default/jwtgate

echo "== dpkg --purge"
in_root dpkg --purge jwtgate
in_root test ! -e /usr/bin/jwtgate || fail "the binary stayed"
in_root test ! -e /etc/jwtgate/jwtgate.yaml || fail "the config stayed after purge"
in_root test ! -e /var/lib/jwtgate || fail "the state stayed after purge"
# Debian keeps system users on purge: what the operator left in
# /etc/jwtgate keeps a named group.
in_root getent passwd jwtgate >/dev/null || fail "the user went with the purge"

echo "== a jwtgate group made beforehand is taken as the user's"
in_root userdel jwtgate
in_root sh -c 'getent group jwtgate >/dev/null && groupdel jwtgate || true'
in_root groupadd --system jwtgate
in_root dpkg -i /tmp/jwtgate.deb || fail "the install failed beside an existing jwtgate group"
[[ $(in_root id -gn jwtgate) == jwtgate ]] || fail "the user's group is $(in_root id -gn jwtgate)"
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 770" ]] || fail "/etc/jwtgate is $(in_root stat -c '%U:%G %a' /etc/jwtgate)"
echo "== a reinstall after /etc/jwtgate was deleted gives it back to the service"
in_root dpkg --remove jwtgate
in_root rm -rf /etc/jwtgate
in_root dpkg -i /tmp/jwtgate.deb
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 770" ]] || fail "/etc/jwtgate is $(in_root stat -c '%U:%G %a' /etc/jwtgate) after a reinstall"
in_root dpkg --purge jwtgate
echo "== a first install keeps a dpkg-statoverride on /etc/jwtgate"
in_root dpkg-statoverride --add root jwtgate 0750 /etc/jwtgate
in_root dpkg -i /tmp/jwtgate.deb
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 750" ]] || fail "the install reset /etc/jwtgate over a statoverride: $(in_root stat -c '%U:%G %a' /etc/jwtgate)"
in_root dpkg --purge jwtgate
in_root dpkg-statoverride --remove /etc/jwtgate
echo "== a jwtgate user made beforehand without a jwtgate group gets one"
in_root userdel jwtgate
in_root sh -c 'getent group jwtgate >/dev/null && groupdel jwtgate || true'
in_root useradd --system --gid users --no-create-home --shell /usr/sbin/nologin jwtgate
in_root dpkg -i /tmp/jwtgate.deb || fail "the install failed beside a jwtgate user with no jwtgate group"
in_root id -Gn jwtgate | tr ' ' '\n' | grep -qx jwtgate || fail "the user is not in a jwtgate group: $(in_root id -Gn jwtgate)"
[[ $(in_root stat -c '%U:%G %a' /etc/jwtgate) == "root:jwtgate 770" ]] || fail "/etc/jwtgate is $(in_root stat -c '%U:%G %a' /etc/jwtgate)"
[[ $(in_root stat -c '%U:%G' /var/lib/jwtgate) == "jwtgate:jwtgate" ]] || fail "/var/lib/jwtgate is $(in_root stat -c '%U:%G' /var/lib/jwtgate)"
in_root dpkg --purge jwtgate
echo "check-deb: ok ($deb)"
