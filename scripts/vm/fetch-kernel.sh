#!/usr/bin/env bash
# Fetches one Debian kernel package for the VM test matrix and unpacks it into the cache:
#   scripts/vm/fetch-kernel.sh 5.10 CACHE_DIR
# leaves CACHE_DIR/kernels/5.10/{vmlinuz,release,package,root/lib/modules/RELEASE}.
#
# apt runs with its own configuration (APT_CONFIG: own sources, lists, cache and
# status) so the system's apt sources and package database are never touched. The
# mirrors are the ones the system's own Debian sources name (override with
# VM_DEBIAN_MIRROR / VM_DEBIAN_SECURITY_MIRROR). A kernel already in the cache is used
# as it is (VM_REFRESH=1 fetches the newest again).
set -euo pipefail
series=${1:?usage: fetch-kernel.sh MAJOR.MINOR CACHE_DIR}
cache=$(realpath -m "${2:?usage: fetch-kernel.sh MAJOR.MINOR CACHE_DIR}")
dest=$cache/kernels/$series
if [ -z "${VM_REFRESH:-}" ] && [ -s "$dest/vmlinuz" ] && [ -s "$dest/release" ]; then exit 0; fi

# The suite that carries each kernel series (Debian 11, Debian 12, Debian 12 backports).
case $series in
  5.10) suites="bullseye bullseye-security" ;;
  6.1) suites="bookworm bookworm-updates bookworm-security" ;;
  6.12) suites="bookworm-backports" ;;
  *) echo "error: kernel $series: no Debian suite known for it (known: 5.10 6.1 6.12)" >&2; exit 2 ;;
esac

# First URIs of the system's Debian sources (deb822 or one-line format), by archive name.
system_mirror() {
  local archive=$1
  { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
    grep -oE '(https?|file)://[^ ]*/'"$archive"'/?( |$)' | head -n1 | tr -d ' ' | sed 's:/$::' || true
}
mirror=${VM_DEBIAN_MIRROR:-$(system_mirror debian)}
security=${VM_DEBIAN_SECURITY_MIRROR:-$(system_mirror debian-security)}
[ -n "$mirror" ] || { echo "error: kernel $series: no Debian mirror in the system's apt sources (set VM_DEBIAN_MIRROR)" >&2; exit 2; }
[ -n "$security" ] || security=${mirror}-security

apt=$cache/apt/$series
mkdir -p "$apt"/{lists/partial,archives/partial,etc/preferences.d,etc/trusted.gpg.d}
: >"$apt/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
  for s in $suites; do
    case $s in *-security) uri=$security ;; *) uri=$mirror ;; esac
    echo "deb [signed-by=$keyring] $uri $s main"
  done
} >"$apt/etc/sources.list"
cat >"$apt/apt.conf" <<CONF
Dir::Etc::SourceList "$apt/etc/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "$apt/etc/preferences";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt";
Dir::Cache::Archives "$apt/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
CONF
export APT_CONFIG=$apt/apt.conf
apt-get -qq update

# The newest generic (not -rt, not -cloud) unsigned amd64 image of the series (the unsigned package holds the same
# kernel and modules as the signed one; QEMU boots without Secure Boot).
re="^linux-image-${series//./\\.}[.-][^ ]*-amd64-unsigned$"
best=""; best_ver=""
for pkg in $(apt-cache pkgnames linux-image- | grep -E "$re" | grep -vE -- '-(rt|cloud)-amd64' || true); do
  ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || continue
  if [ -z "$best" ] || dpkg --compare-versions "$ver" gt "$best_ver"; then best=$pkg; best_ver=$ver; fi
done
[ -n "$best" ] || { echo "error: kernel $series: no package matching $re in $suites" >&2; exit 1; }

(cd "$apt/archives" && apt-get -qq download "$best=$best_ver")
deb=$(ls -t "$apt/archives/${best}_"*.deb | head -n1)
mkdir -p "$cache/kernels"
tmp=$(mktemp -d "$cache/kernels/.i12-unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg -x "$deb" "$tmp/root"
release=$(ls "$tmp/root/lib/modules" | head -n1)
cp "$tmp/root/boot/vmlinuz-$release" "$tmp/vmlinuz"
# modprobe in the guest (the kernel's module autoloading) needs modules.dep.
depmod -b "$tmp/root" "$release"
echo "$release" >"$tmp/release"
echo "$best $best_ver" >"$tmp/package"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "kernel $series: $best $best_ver ($release)"
