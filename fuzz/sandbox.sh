#!/bin/sh
# Runs a fuzz target so that what its inputs ask the server to do (write,
# remove and rename files, start processes, send signals) cannot harm the
# machine. `cargo xtask fuzz` runs it as root inside
#   unshare --mount --propagation private --pid --fork --kill-child \
#           --mount-proc --net --ipc --uts
# so that every mount change below stays in the sandbox, a signal to -1
# reaches only the sandbox's processes, and there is no network.
#
# Usage: sandbox.sh SCRATCH CORPUS ARTIFACTS -- PROGRAM [ARG...]
#   SCRATCH    becomes an empty 256 MiB tmpfs, the only place inputs can
#              write files (the seeds' `${tmp}`);
#   CORPUS, ARTIFACTS stay writable for libFuzzer;
#   every other mount turns read-only, nodev and nosuid (a read-only
#   mount refuses writes to regular files, /proc's and /sys's included,
#   but not to device nodes: hence nodev, and a new /dev below that holds
#   only harmless devices and a private devpts instance for PTYs). The
#   program then runs with no capabilities (no mount, no mknod, no
#   ptrace), so nothing it starts can undo this.
# Paths must be canonical (no symlinks), as /proc/self/mountinfo shows them.
set -eu

if [ $# -lt 5 ] || [ "$4" != "--" ]; then
    echo "usage: sandbox.sh SCRATCH CORPUS ARTIFACTS -- PROGRAM [ARG...]" >&2
    exit 2
fi
scratch=$1
corpus=$2
artifacts=$3
shift 4

mount -t tmpfs -o size=256m,mode=0755,nosuid,nodev exec-fuzz-scratch "$scratch"
mount --bind "$corpus" "$corpus"
mount --bind "$artifacts" "$artifacts"
mount -o remount,bind,nosuid,nodev "$corpus"
mount -o remount,bind,nosuid,nodev "$artifacts"

# Deepest mounts first, so that remounting a parent never hides a child
# still to be done. Mount points with spaces are shown escaped (\040) and
# are skipped, which the writability checks below would catch if it mattered.
awk '{ print $5 }' /proc/self/mountinfo | sort -r -u | while read -r point; do
    case "$point" in
        "$scratch" | "$corpus" | "$artifacts") continue ;;
    esac
    # Some mounts refuse (already locked read-only); the checks below
    # decide whether what matters is read-only. No redirect to /dev/null
    # here: once /dev is nodev it cannot be opened.
    mount -o remount,bind,ro,nosuid,nodev "$point" 2>&1 | grep -v . || true
done

# A new /dev: the devices programs expect, and a devpts instance of the
# sandbox's own, instead of the machine's block devices.
mount -t tmpfs -o size=1m,mode=0755,nosuid exec-fuzz-dev /dev
mknod -m 0666 /dev/null c 1 3
mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/full c 1 7
mknod -m 0666 /dev/random c 1 8
mknod -m 0666 /dev/urandom c 1 9
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec exec-fuzz-pts /dev/pts
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -o remount,ro,nosuid /dev

# Refuse to run unless the machine is really out of reach. `test -w`
# asks access(2), which answers EROFS for a read-only mount, and writes nothing.
for path in / /work /tmp /root /etc /usr /proc/sysrq-trigger /sys/kernel "$(pwd)"; do
    if [ -e "$path" ] && [ -w "$path" ]; then
        echo "sandbox.sh: $path is still writable; not running the fuzz target" >&2
        exit 3
    fi
done
if [ ! -w "$scratch" ] || [ ! -w "$corpus" ] || [ ! -w "$artifacts" ]; then
    echo "sandbox.sh: a directory the fuzzer needs is not writable" >&2
    exit 3
fi

cd "$artifacts"
exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"
