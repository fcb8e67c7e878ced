#!/usr/bin/env bash
# Builds what run.sh boots, under $VM_BUILD (default: build-vm/ at the repository root, which
# the repository's .gitignore already keeps out of git):
#   samples/   mbochs.c, mdpy.c and mdpy-defs.h from linux-source-6.1, with mbochs fixed (below),
#              and udmabuf.c (drivers/dma-buf; Debian builds its kernel without CONFIG_UDMABUF),
#              compiled out of tree against the pinned kernel's headers
#   initramfs.cpio.gz   busybox, the modules the tests need (dependencies resolved with modinfo)
#              and tests/vm/init
# Each step records a digest of its inputs and is skipped when they have not changed, so a
# re-run costs well under a second.
#
# Environment:
#   VM_BUILD                where to build (default: <repo>/build-vm)
#   VM_MBOCHS_KEEP          mbochs bugs to leave in, comma-separated: enomem, rdonly, reexport
#                           (see step 1), e.g. enomem to test a source's retry against the
#                           driver as shipped. Remembered by the build folder (so give such a
#                           build its own VM_BUILD); VM_MBOCHS_KEEP= goes back to all fixes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=kernel.env
. "$here/kernel.env"
kver=$VSCANOUT_VM_KERNEL_ABI-amd64
build=$(realpath -m "${VM_BUILD:-$repo/build-vm}")
tarball=/usr/src/linux-source-6.1.tar.xz
kbuild=/lib/modules/$kver/build

for f in "$tarball" "$kbuild/Makefile" "/boot/vmlinuz-$kver" /bin/busybox; do
	[ -e "$f" ] || { echo "vm build: $f is missing; run tests/vm/setup.sh first" >&2; exit 1; }
done
mkdir -p "$build"
# Sticky per build folder, like a configure option: run.sh calls build.sh without it.
if [ -n "${VM_MBOCHS_KEEP+set}" ]; then
	keep=$VM_MBOCHS_KEEP
	echo "$keep" > "$build/mbochs-keep"
else
	keep=$(cat "$build/mbochs-keep" 2>/dev/null || true)
fi

# --- helpers -------------------------------------------------------------------------------
t_start=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# up_to_date STEP DIGEST: true when STEP last ran with these inputs.
up_to_date() { [ -f "$build/.stamp-$1" ] && [ "$(cat "$build/.stamp-$1")" = "$2" ]; }
mark_done() { echo "$2" > "$build/.stamp-$1"; }
digest() { sha256sum | cut -c1-32; }
self_digest=$(sha256sum "$here/build.sh" "$here/kernel.env" | digest)

# --- 1. the sample drivers' sources, fixed ------------------------------------------------
# mbochs in 6.1 has three bugs that get in the way of testing a display source; each is fixed
# by a patch to the build copy (strict: no fuzz, so a source that changed stops the build).
# VM_MBOCHS_KEEP=enomem,rdonly,reexport leaves the named ones in.
fix_mbochs() { # NAME < unified diff
	if [[ ,$keep, == *,$1,* ]]; then
		cat > /dev/null
		echo "vm build: mbochs bug '$1' left in (VM_MBOCHS_KEEP)"
	elif ! patch --quiet --forward --fuzz=0 --no-backup-if-mismatch -p1 -d "$src"; then
		echo "vm build: the mbochs fix '$1' no longer applies to $tarball" >&2
		exit 1
	fi
}

src=$build/samples
src_key=$( { echo "$self_digest $keep"; stat -c '%s %Y' "$tarball"; } | digest)
if up_to_date sources "$src_key"; then
	echo "vm build: samples up to date"
else
	t=$(date +%s%N)
	rm -rf "$src" "$build/extract"
	mkdir -p "$src" "$build/extract"
	# Only the three files are wanted, but xz has to stream the whole 140 MB archive (~8 s).
	tar -xJf "$tarball" -C "$build/extract" --strip-components=3 \
		linux-source-6.1/samples/vfio-mdev/mbochs.c \
		linux-source-6.1/samples/vfio-mdev/mdpy.c \
		linux-source-6.1/samples/vfio-mdev/mdpy-defs.h \
		linux-source-6.1/drivers/dma-buf/udmabuf.c
	mv "$build/extract"/* "$src/"
	rmdir "$build/extract"

	# enomem: on a configuration it has not seen, mbochs_query_gfx_plane() allocates the dma-buf
	# record but drops the returned pointer and answers ENOMEM; the next query finds the record
	# and succeeds. Real drivers have quirks of this kind, so vscanout must retry either way.
	fix_mbochs enomem <<'EOF'
--- a/mbochs.c
+++ b/mbochs.c
@@ -1136,7 +1136,7 @@
 
 	dmabuf = mbochs_dmabuf_find_by_mode(mdev_state, &mode);
 	if (!dmabuf)
-		mbochs_dmabuf_alloc(mdev_state, &mode);
+		dmabuf = mbochs_dmabuf_alloc(mdev_state, &mode);
 	if (!dmabuf) {
 		mutex_unlock(&mdev_state->ops_lock);
 		return -ENOMEM;
EOF
	# rdonly: the dma-buf file is created without O_RDWR (exp_info.flags stays 0). mmap(MAP_SHARED)
	# of a file not open for writing loses VM_SHARED, which mbochs_mmap_dmabuf() refuses with
	# EINVAL: no CPU mapping of an mbochs dma-buf works, not even a read-only one.
	fix_mbochs rdonly <<'EOF'
--- a/mbochs.c
+++ b/mbochs.c
@@ -1018,6 +1018,7 @@
 	exp_info.ops = &mbochs_dmabuf_ops;
 	exp_info.size = dmabuf->mode.size;
 	exp_info.priv = dmabuf;
+	exp_info.flags = O_RDWR;
 
 	buf = dma_buf_export(&exp_info);
 	if (IS_ERR(buf)) {
EOF
	# reexport: the page references a dma-buf record takes once, when it is created, are dropped
	# every time an exported dma-buf of it is released. Asking for the same id again after
	# closing its fd (what an importer with a bounded cache does) drops them again, so after a
	# few rounds the framebuffer pages are freed while still in use and other processes' memory
	# shows up in the guest's framebuffer (and the guest's writes in theirs): "BUG: Bad page
	# state" in dmesg. Fixed by keeping the references for the record's lifetime (released with
	# the record, in mbochs_release_dmabuf() or mbochs_close_device()).
	fix_mbochs reexport <<'EOF'
--- a/mbochs.c
+++ b/mbochs.c
@@ -911,13 +911,14 @@
 
 	dev_dbg(dev, "%s: %d\n", __func__, dmabuf->id);
 
-	for (pg = 0; pg < dmabuf->pagecount; pg++)
-		put_page(dmabuf->pages[pg]);
-
 	mutex_lock(&mdev_state->ops_lock);
 	dmabuf->buf = NULL;
-	if (dmabuf->unlinked)
+	if (dmabuf->unlinked) {
+		for (pg = 0; pg < dmabuf->pagecount; pg++)
+			put_page(dmabuf->pages[pg]);
+		kfree(dmabuf->pages);
 		kfree(dmabuf);
+	}
 	mutex_unlock(&mdev_state->ops_lock);
 }
 
@@ -1317,6 +1318,11 @@
 			/* free in mbochs_release_dmabuf() */
 			dmabuf->unlinked = true;
 		} else {
+			pgoff_t pg;
+
+			for (pg = 0; pg < dmabuf->pagecount; pg++)
+				put_page(dmabuf->pages[pg]);
+			kfree(dmabuf->pages);
 			kfree(dmabuf);
 		}
 	}
EOF
	# udmabuf (/dev/udmabuf: dma-bufs over sealed memfds; the sim source's dmabuf=on, used by the
	# kiosk test) is a bool in 6.1's Kconfig and Debian leaves it off. Out of tree it lacks three
	# symbols the kernel does not export: shmem_mapping() (a tmpfs inode's superblock magic says
	# the same for a memfd), memfd_fcntl(F_GET_SEALS) (the seals are in the shmem inode) and
	# hugetlbfs_file_operations (hugetlb memfds are refused instead); it also has to import the
	# DMA_BUF symbol namespace itself.
	if ! patch --quiet --forward --fuzz=0 --no-backup-if-mismatch -p1 -d "$src" <<'EOF'
--- a/udmabuf.c
+++ b/udmabuf.c
@@ -12,6 +12,14 @@
 #include <linux/slab.h>
 #include <linux/udmabuf.h>
 #include <linux/hugetlb.h>
+#include <linux/magic.h>
+
+/* Built out of tree: shmem_mapping(), memfd_fcntl() and hugetlbfs_file_operations are not exported. */
+#define shmem_mapping(mapping) ((mapping)->host->i_sb->s_magic == TMPFS_MAGIC)
+#define memfd_fcntl(file, cmd, arg) ((int)SHMEM_I(file_inode(file))->seals)
+#undef is_file_hugepages
+#define is_file_hugepages(file) false
+MODULE_IMPORT_NS(DMA_BUF);
 
 static int list_limit = 1024;
 module_param(list_limit, int, 0644);
EOF
	then
		echo "vm build: the udmabuf out-of-tree patch no longer applies to $tarball" >&2
		exit 1
	fi
	echo "vm build: samples extracted and fixed in $(ms_since "$t") ms"
	mark_done sources "$src_key"
fi

# --- 2. the modules --------------------------------------------------------------------------
mod_key=$( { echo "$self_digest $kver"; cat "$src/mbochs.c" "$src/mdpy.c" "$src/mdpy-defs.h" "$src/udmabuf.c"; } | digest)
if up_to_date modules "$mod_key" && [ -f "$src/mbochs.ko" ] && [ -f "$src/mdpy.ko" ] && [ -f "$src/udmabuf.ko" ]; then
	echo "vm build: mbochs.ko, mdpy.ko, udmabuf.ko up to date"
else
	t=$(date +%s%N)
	printf 'obj-m := mbochs.o mdpy.o udmabuf.o\n' > "$src/Kbuild"
	make -s -C "$kbuild" M="$src" -j"$(nproc)" modules
	echo "vm build: mbochs.ko, mdpy.ko, udmabuf.ko built in $(ms_since "$t") ms"
	mark_done modules "$mod_key"
fi

# --- 3. the kernel, uncompressed ------------------------------------------------------------
# Debian's vmlinuz is xz-compressed, and under TCG the kernel's own decompressor takes ~3 s of
# every boot. The vmlinux inside is an ELF with a PVH entry note (CONFIG_PVH), which QEMU's
# -kernel boots directly: decompress it once here. run.sh falls back to vmlinuz without it.
vmlinuz=/boot/vmlinuz-$kver
kernel_key=$( { echo "$self_digest"; stat -c '%s %Y' "$vmlinuz"; } | digest)
if up_to_date kernel "$kernel_key" && [ -f "$build/vmlinux" ]; then
	echo "vm build: vmlinux up to date"
else
	t=$(date +%s%N)
	rm -f "$build/vmlinux"
	off=$(LC_ALL=C grep -aboP -m1 '\xFD7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
	if [ -n "$off" ]; then
		# xz stops at the end of its stream and complains about the bzImage trailer after it.
		tail -c +$((off + 1)) "$vmlinuz" | xz -dcq > "$build/vmlinux.new" 2>/dev/null || true
	fi
	if [ -s "$build/vmlinux.new" ] && readelf -n "$build/vmlinux.new" 2>/dev/null | grep -q 'Xen.*(0x00000012)'; then
		mv "$build/vmlinux.new" "$build/vmlinux"
		echo "vm build: vmlinux extracted in $(ms_since "$t") ms"
	else
		rm -f "$build/vmlinux.new"
		echo "vm build: no PVH-bootable vmlinux in $vmlinuz; run.sh boots the compressed kernel (slower)"
	fi
	mark_done kernel "$kernel_key"
fi

# --- 4. the initramfs ------------------------------------------------------------------------
# Groups of modules: "base" is always loaded; another group is loaded when the kernel command
# line names it (vscanout.modules=vgem, run.sh's VM_MODULES). Dependencies come from modinfo, so
# a kernel bump that splits a module keeps working.
#   virtio_pci, 9pnet_virtio, 9p: the host root and the out share over virtio-9p
#   vfio_iommu_type1: the container's IOMMU model (mdev devices sit in emulated IOMMU groups)
#   mdev: the mediated-device bus; mbochs and mdpy register on it. Nothing from vfio-pci is
#         needed: the samples implement the vfio-pci region layout themselves.
#   vgem (optional): a DRM driver whose dumb buffers export as dma-bufs in the guest
#   kms (optional): virtio_gpu, the KMS driver of QEMU's virtio-vga / virtio-gpu-pci (connectors
#         Virtual-N, a primary and a cursor plane per CRTC), with drm, drm_kms_helper,
#         drm_shmem_helper and virtio_dma_buf from modinfo (tests/vm/kiosk_test.sh)
#   udmabuf (optional): /dev/udmabuf, built here from the kernel's source (step 1); the sim
#         source's dmabuf=on makes its buffers with it (tests/vm/kiosk_test.sh)
#   input (optional): evdev (/dev/input/event*; the i8042 PS/2 keyboard and atkbd are built into
#         Debian's kernel, psmouse is not loaded) and virtio_input for QEMU's virtio-tablet-pci /
#         virtio-keyboard-pci (tests/vm/qemu_dbus_test.sh)
declare -A groups=(
	[base]="virtio_pci 9pnet_virtio 9p vfio vfio_iommu_type1 mdev $src/mbochs.ko $src/mdpy.ko"
	[vgem]="vgem"
	[kms]="virtio_gpu"
	[udmabuf]="$src/udmabuf.ko"
	[input]="evdev virtio_input"
)
group_order=(base vgem kms udmabuf input)

declare -A seen=() # module name -> its index in order
order=() # "name group[,group...] path" in load order
# A module that several optional groups need (drm: vgem and kms) is listed once, with each of
# them; init loads it when any of its groups is on.
resolve() { # MODULE-or-PATH GROUP
	local m=$1 group=$2 path name deps d i n gs
	if [[ $m == */* ]]; then path=$m; else path=$(modinfo -k "$kver" -n "$m"); fi
	name=$(basename "$path"); name=${name%%.ko*}
	deps=$(modinfo -k "$kver" -F depends "$path")
	if [ -n "${seen[$name]:-}" ]; then
		i=${seen[$name]}
		read -r n gs path <<< "${order[$i]}"
		[[ ,$gs, != *,base,* && ,$gs, != *,$group,* ]] || return 0
		order[i]="$n $gs,$group $path"
		for d in ${deps//,/ }; do resolve "$d" "$group"; done
		return 0
	fi
	for d in ${deps//,/ }; do resolve "$d" "$group"; done # module dependencies have no cycles
	seen[$name]=${#order[@]}
	order+=("$name $group $path")
}
for g in "${group_order[@]}"; do
	for m in ${groups[$g]}; do resolve "$m" "$g"; done
done

init_key=$( {
	echo "$self_digest"; cat "$here/init"; sha256sum /bin/busybox
	for e in "${order[@]}"; do echo "$e"; sha256sum "${e##* }"; done
} | digest)
if up_to_date initramfs "$init_key" && [ -f "$build/initramfs.cpio.gz" ]; then
	echo "vm build: initramfs up to date"
else
	t=$(date +%s%N)
	root=$build/initramfs
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,host,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	cp "$here/init" "$root/init"
	chmod 755 "$root/init"
	: > "$root/lib/modules/load-order"
	for e in "${order[@]}"; do
		read -r name group path <<< "$e"
		case "$path" in
		*.ko.xz) xz -dc "$path" > "$root/lib/modules/$name.ko" ;;
		*.ko.zst) zstd -dcq "$path" > "$root/lib/modules/$name.ko" ;;
		*) cp "$path" "$root/lib/modules/$name.ko" ;;
		esac
		echo "$name $group" >> "$root/lib/modules/load-order"
	done
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$build/initramfs.cpio.gz.new"
	mv "$build/initramfs.cpio.gz.new" "$build/initramfs.cpio.gz"
	echo "vm build: initramfs with $(wc -l < "$root/lib/modules/load-order") modules" \
		"($(du -k "$build/initramfs.cpio.gz" | cut -f1) KiB) in $(ms_since "$t") ms"
	mark_done initramfs "$init_key"
fi
echo "vm build: done in $(ms_since "$t_start") ms ($build)"
