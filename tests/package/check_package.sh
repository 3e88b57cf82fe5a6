#!/usr/bin/env bash
# The Debian package as an operator gets it. Builds the .deb from a built
# tree with CPack (or takes one with --deb), then checks its control data,
# its files and their modes, installs it into a scratch root with dpkg --root
# (the maintainer scripts run with DPKG_ROOT, so the danemta account and the
# directories land in the scratch root, never on this host), runs the
# installed binary, lints the man pages, verifies the systemd unit with
# systemd-analyze against that root, reinstalls (the upgrade path) and purges.
#
# Usage: check_package.sh --build-dir DIR     (what ctest runs)
#        check_package.sh --deb FILE          (scripts/package --check)
set -euo pipefail

build_dir=""
deb=""
case "${1:-}" in
--build-dir) build_dir=$2 ;;
--deb) deb=$2 ;;
*)
  echo "usage: $0 --build-dir DIR | --deb FILE" >&2
  exit 2
  ;;
esac

work=$(mktemp -d /tmp/danemta-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

if [ -n "$build_dir" ]; then
  # The tree's own install rules and CPack settings; it must be built
  # (cmake --install builds nothing).
  (cd "$build_dir" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || {
    cat "$work/cpack.log" >&2
    echo "FAIL: cpack" >&2
    exit 1
  }
  deb=$(ls "$work"/out/danemta_*.deb)
fi
[ -f "$deb" ] || {
  echo "FAIL: no package at $deb" >&2
  exit 1
}
echo "package: $deb"

# --- control data -----------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = danemta ] && ok "Package: danemta" || fail "Package is $(field Package)"
[ "$(field Section)" = mail ] && ok "Section: mail" || fail "Section is $(field Section)"
depends=$(field Depends)
depends_names=$(tr ',' '\n' <<<"$depends" | awk '{ print $1 }')
for need in libunbound8 libssl3 libsqlite3-0 libopendkim11 zlib1g libc6 passwd; do
  if grep -qxF -- "$need" <<<"$depends_names"; then ok "Depends names $need"; else fail "Depends lacks $need: $depends"; fi
done
if dpkg-deb -f "$deb" Provides Conflicts Replaces | grep -q mail-transport-agent; then
  fail "the package claims mail-transport-agent (ADR 0005 says it must not)"
else
  ok "no Provides/Conflicts mail-transport-agent"
fi

mkdir -p "$work/control"
dpkg-deb -e "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = /etc/danemta/danemta.toml ] &&
  ok "conffiles: /etc/danemta/danemta.toml" || fail "conffiles: $(cat "$work/control/conffiles")"
for s in postinst prerm postrm; do
  if [ -x "$work/control/$s" ] && sh -n "$work/control/$s"; then ok "$s is an executable sh script"; else fail "$s"; fi
done

# --- files and modes --------------------------------------------------------
# "mode owner path" for every file in the data archive.
dpkg-deb -c "$deb" | awk '{ sub(/^\.\//, "/", $6); print $1, $2, $6 }' >"$work/contents"
expect() { # mode path
  if grep -qx -- "$1 root/root $2" "$work/contents"; then ok "$1 $2"; else fail "expected $1 root/root $2; got: $(grep -- " $2\$" "$work/contents" || echo nothing)"; fi
}
expect -rwxr-xr-x /usr/bin/danemta
expect -rw-r--r-- /etc/danemta/danemta.toml
expect -rw-r--r-- /lib/systemd/system/danemta.service
expect -rw-r--r-- /usr/share/man/man8/danemta.8.gz
expect -rw-r--r-- /usr/share/man/man5/danemta.toml.5.gz
expect -rw-r--r-- /usr/share/doc/danemta/operations.md
expect -rw-r--r-- /usr/share/doc/danemta/metrics.md
if grep -q "sbin/sendmail" "$work/contents"; then fail "ships a sendmail (ADR 0005)"; else ok "no /usr/sbin/sendmail"; fi
if awk '$1 !~ /^l/ && $1 ~ /w.$|w....$/' "$work/contents" | grep -q .; then fail "group- or world-writable files"; else ok "nothing group- or world-writable"; fi

# --- install into a scratch root --------------------------------------------
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:*::\n' >"$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
host_passwd=$(sha256sum /etc/passwd /etc/group)

# The scratch root has no libraries in its dpkg database: dependencies are
# checked against this host below, not by dpkg.
dpkg_root() {
  dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null "$@" >"$work/dpkg.log" 2>&1 || {
    cat "$work/dpkg.log" >&2
    return 1
  }
}
if dpkg_root -i "$deb"; then ok "dpkg --root -i"; else fail "dpkg --root -i"; fi
[ "$(dpkg-query --root="$root" -W -f='${Status}' danemta)" = "install ok installed" ] &&
  ok "installed and configured" || fail "status: $(dpkg-query --root="$root" -W -f='${Status}' danemta)"
[ "$(sha256sum /etc/passwd /etc/group)" = "$host_passwd" ] && ok "this host's passwd and group untouched" ||
  fail "the maintainer scripts changed this host's /etc/passwd or /etc/group"

user_line=$(grep '^danemta:' "$root/etc/passwd" || true)
group_line=$(grep '^danemta:' "$root/etc/group" || true)
IFS=: read -r _ _ uid gid _ home shell <<<"$user_line"
if [ -n "$user_line" ] && [ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] && [ "$home" = /var/spool/danemta ] &&
  [ "$shell" = /usr/sbin/nologin ] && [ "$(cut -d: -f3 <<<"$group_line")" = "$gid" ]; then
  ok "system account: $user_line"
else
  fail "account: '$user_line', group: '$group_line'"
fi
for dir in /var/spool/danemta /var/lib/danemta; do
  got=$(stat -c '%a %u %g %F' "$root$dir" 2>/dev/null || echo missing)
  [ "$got" = "700 $uid $gid directory" ] && ok "$dir 0700 danemta:danemta" || fail "$dir: $got"
done

# The installed binary runs; the installed config is the one the unit names.
version=$("$root/usr/bin/danemta" --version 2>&1 || true)
[[ "$version" == "danemta "* ]] && ok "installed binary runs: $version" || fail "danemta --version: $version"
grep -qx 'user = "danemta"' "$root/etc/danemta/danemta.toml" && ok 'the config names user = "danemta"' ||
  fail 'the config lacks user = "danemta"'

# Every shared library the binary links (its DT_NEEDED entries) comes from a
# package named in Depends.
libs_before=$failures
while read -r name path; do
  # Merged /usr: dpkg knows a library by the path its package ships.
  pkg=""
  for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
    pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1 || true)
    [ -n "$pkg" ] && break
  done
  if [ -z "$pkg" ]; then
    fail "no package owns $path ($name)"
  elif ! grep -qxF -- "$pkg" <<<"$depends_names"; then
    fail "$name comes from $pkg, which Depends does not name"
  fi
done < <(join <(readelf -d "$root/usr/bin/danemta" | awk '/NEEDED/ { gsub(/[][]/, "", $5); print $5 }' | sort) \
  <(ldd "$root/usr/bin/danemta" | awk '/=> \// { print $1, $3 }' | sort))
[ "$failures" = "$libs_before" ] && ok "every library the binary links is from a package in Depends"

# --- man pages ----------------------------------------------------------------
for page in man8/danemta.8.gz man5/danemta.toml.5.gz; do
  warnings=$(zcat "$root/usr/share/man/$page" | groff -man -Tutf8 -ww -z 2>&1 || true)
  if [ -n "$warnings" ]; then fail "$page: $warnings"; else ok "$page: groff -ww is silent"; fi
  if MANPATH="$root/usr/share/man" man -P cat "$root/usr/share/man/$page" 2>/dev/null | grep -q '^NAME'; then
    ok "$page renders"
  else
    fail "$page does not render"
  fi
done

# --- the systemd unit ---------------------------------------------------------
# verify resolves the unit's dependencies, its ExecStart/ExecReload binaries
# and its man: references inside the root: give the root systemd's own units
# and kill(1) as a host has them. Any message is a failure (verify's exit
# status ignores unknown keys).
cp -an /lib/systemd/system/. "$root/lib/systemd/system/"
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/kill"
verify=$(cd "$work" && MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" danemta.service 2>&1) &&
  [ -z "$verify" ] && ok "systemd-analyze verify: clean" || fail "systemd-analyze verify: $verify"
unit="$root/lib/systemd/system/danemta.service"
for line in 'ExecStart=/usr/bin/danemta --config /etc/danemta/danemta.toml relay' 'User=danemta' \
  'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
  'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/spool/danemta' \
  'StateDirectory=danemta' 'PrivateTmp=yes' 'ProtectHome=yes' 'UMask=0077' 'Restart=on-failure' \
  'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF -- "$line" "$unit" && ok "unit: $line" || fail "unit lacks: $line"
done
# The sandbox as systemd scores it (0 best, 10 worst; the threshold is x10).
exposure=$(cd "$work" && systemd-analyze security --offline=yes --root="$root" danemta.service 2>&1 | tail -1)
if (cd "$work" && systemd-analyze security --offline=yes --root="$root" --threshold=20 danemta.service >/dev/null 2>&1); then
  ok "exposure at most 2.0: $exposure"
else
  fail "exposure above 2.0: $exposure"
fi

# --- reinstall (the upgrade path), then purge ----------------------------------
if dpkg_root -i "$deb"; then ok "reinstall"; else fail "reinstall"; fi
[ "$(grep -c '^danemta:' "$root/etc/passwd")" = 1 ] && ok "still one danemta account" || fail "account duplicated"
touch "$root/var/spool/danemta/queue.db"
if dpkg_root --purge danemta; then ok "dpkg --root --purge"; else fail "purge"; fi
for gone in /usr/bin/danemta /etc/danemta /lib/systemd/system/danemta.service /var/spool/danemta /var/lib/danemta; do
  [ ! -e "$root$gone" ] && ok "purged: $gone" || fail "left after purge: $gone"
done
grep -q '^danemta:' "$root/etc/passwd" && ok "the account stays after purge (ADR 0005)" || fail "the account was removed"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "package checks passed"
