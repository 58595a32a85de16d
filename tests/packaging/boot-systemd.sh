#!/bin/bash
# Usage: unshare --pid --fork --mount --uts --cgroup --mount-proc \
#          --propagation private boot-systemd.sh LOG UNITS_DIR
#
# PID 1 of a private PID, mount, UTS and cgroup namespace, for
# test_packaging.py: a systemd that loads only the units copied from
# UNITS_DIR (SYSTEMD_UNIT_PATH: none of the machine's own units, so no
# tmpfiles, sysctl, udev or timers run) in container mode, on a
# read-only view of the machine with private /run, /tmp, /var/tmp, /dev
# and a private /sys/fs/cgroup tmpfs (systemd remounts that read-only:
# the machine's must not be the one it remounts). Its own log goes to
# LOG (bound on its /dev/console). Nothing it does can write to the
# machine's file systems; it leaves cgroup folders behind, which the
# test removes.
set -eu
log=$1
units=$2

# The new root is put together under a private /run (LOG and UNITS_DIR
# are elsewhere, in the test's folder).
mount -t tmpfs -o mode=0755 tmpfs /run
new=/run/root
mkdir "$new"
mount --rbind / "$new"
mount -o remount,bind,ro "$new"
mount -t tmpfs -o mode=0755 tmpfs "$new/run"
mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
mount -t tmpfs -o mode=1777 tmpfs "$new/var/tmp"

mount -t tmpfs -o mode=0755 tmpfs "$new/dev"
for n in null zero full random urandom tty; do
	touch "$new/dev/$n"
	mount --bind "/dev/$n" "$new/dev/$n"
done
touch "$new/dev/console"
mount --bind "$log" "$new/dev/console"
mkdir "$new/dev/pts" "$new/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$new/dev/pts"
ln -s pts/ptmx "$new/dev/ptmx"
ln -s /proc/self/fd "$new/dev/fd"
mount -t tmpfs -o mode=1777 tmpfs "$new/dev/shm"

# A legacy or hybrid tree is a tmpfs of hierarchies: a tmpfs of our own
# holding the same hierarchies. A unified tree (cgroup2 only) is used as
# it is.
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ]; then
	umount -l "$new/sys/fs/cgroup"
	mount -t tmpfs -o mode=0755 tmpfs "$new/sys/fs/cgroup"
	for h in /sys/fs/cgroup/*; do
		if [ -d "$h" ] && [ ! -L "$h" ] && mountpoint -q "$h"; then
			mkdir "$new$h"
			mount --bind "$h" "$new$h"
		fi
	done
fi

mkdir -p "$new/run/coupon-test-units" "$new/run/old-root"
cp "$units"/* "$new/run/coupon-test-units/"
cd "$new"
pivot_root . run/old-root
umount -l /run/old-root
rmdir /run/old-root

export SYSTEMD_UNIT_PATH=/run/coupon-test-units container=coupon-packaging-test
exec /lib/systemd/systemd --system --unit=coupon-test.target --log-target=console \
	</dev/null >/dev/console 2>&1
