#!/usr/bin/env bash
# Builds the initramfs for one cached kernel (see fetch-kernel.sh):
#   scripts/vm/build-initramfs.sh 5.10 CACHE_DIR  ->  CACHE_DIR/kernels/5.10/initramfs.cpio.gz
# It holds busybox (static), scripts/vm/init and the kernel's own modules that init
# needs before the root is mounted (virtio PCI, 9p, overlay, virtio-rng), decompressed
# and listed in load order, so the guest needs no modprobe at that stage.
set -euo pipefail
series=${1:?usage: build-initramfs.sh MAJOR.MINOR CACHE_DIR}
cache=$(realpath -m "${2:?usage: build-initramfs.sh MAJOR.MINOR CACHE_DIR}")
here=$(dirname "$(realpath "$0")")
kdir=$cache/kernels/$series
release=$(cat "$kdir/release")
out=$kdir/initramfs.cpio.gz
# busybox-static's binary: the initramfs has no libc.
busybox=/bin/busybox
# Rebuild only when init or the kernel changed.
if [ -s "$out" ] && [ "$out" -nt "$here/init" ] && [ "$out" -nt "$0" ] && [ "$out" -nt "$kdir/release" ]; then exit 0; fi

tmp=$(mktemp -d "$cache/.i12-initramfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,lower,rw,newroot,modules}
cp "$busybox" "$tmp/bin/busybox"
ln -s busybox "$tmp/bin/sh"
cp "$here/init" "$tmp/init"
chmod 755 "$tmp/init"
# The kernel's module autoloading (veth, sch_ingress, nf_tables…) runs /sbin/modprobe
# in the initramfs root, while the test run lives chrooted in /newroot: hand it over.
mkdir -p "$tmp/sbin"
printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' >"$tmp/sbin/modprobe"
chmod 755 "$tmp/sbin/modprobe"

: >"$tmp/modules/order"
for m in virtio_pci 9pnet_virtio 9p overlay virtio_rng; do
  # Built-in modules print "builtin NAME"; only insmod lines name files to load.
  modprobe -d "$kdir/root" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}' |
    while read -r ko; do
      name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
      grep -qx "$name" "$tmp/modules/order" && continue
      case $ko in
        *.xz) xz -dc "$ko" >"$tmp/modules/$name" ;;
        *.zst) zstd -qdc "$ko" >"$tmp/modules/$name" ;;
        *.gz) gzip -dc "$ko" >"$tmp/modules/$name" ;;
        *) cp "$ko" "$tmp/modules/$name" ;;
      esac
      echo "$name" >>"$tmp/modules/order"
    done
done
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$out.tmp")
mv "$out.tmp" "$out"
