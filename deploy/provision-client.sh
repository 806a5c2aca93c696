#!/usr/bin/env bash
# provision-client.sh: make a Linux host an NFS client of a hanfs cluster with
# a hard mount of its service address (in /etc/fstab, mounted at boot).
#
# Idempotent: the fstab entry is written once (replaced if the settings
# change) and an existing mount is left alone. Settings come from the
# environment:
#
#   SERVER       the service address (the cluster's VIP) (required)
#   PORT         NFS and MOUNT port (default 2049)
#   EXPORT_PATH  the exported path to mount (default /)
#   MOUNTPOINT   where to mount it (default /mnt/hanfs)
#   MOUNT_OPTS   extra mount options appended to the required ones
#   MOUNT_WAIT   seconds to wait for the service to answer (default 300)
#   FSTAB        the fstab to edit (default /etc/fstab)
#   SKIP_APT=1   do not install nfs-common
#   SKIP_MOUNT=1 write the fstab entry only; do not mount
#
# The options are the ones hanfs needs: NFSv3 over TCP with MOUNT on the same
# port, no NLM (hanfs has no lock manager), and "hard": a failover is then a
# pause of a few seconds, never an error returned to an application.
set -euo pipefail

log() { echo "provision-client: $*"; }
die() { echo "provision-client: error: $*" >&2; exit 1; }

SERVER=${SERVER:-}
PORT=${PORT:-2049}
EXPORT_PATH=${EXPORT_PATH:-/}
MOUNTPOINT=${MOUNTPOINT:-/mnt/hanfs}
MOUNT_OPTS=${MOUNT_OPTS:-}
MOUNT_WAIT=${MOUNT_WAIT:-300}
FSTAB=${FSTAB:-/etc/fstab}
SKIP_APT=${SKIP_APT:-0}
SKIP_MOUNT=${SKIP_MOUNT:-0}

[[ -n $SERVER ]] || die "SERVER is required (the cluster's service address)"
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number (got '$PORT')"

opts="vers=3,proto=tcp,port=$PORT,mountport=$PORT,mountproto=tcp,nolock,hard,_netdev"
[[ -n $MOUNT_OPTS ]] && opts="$opts,$MOUNT_OPTS"
entry="$SERVER:$EXPORT_PATH $MOUNTPOINT nfs $opts 0 0"
marker="# hanfs (deploy/provision-client.sh)"

# 1. The NFS client.
if [[ $SKIP_APT != 1 ]]; then
	if ! command -v mount.nfs >/dev/null 2>&1; then
		log "installing nfs-common"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq nfs-common
	else
		log "nfs-common is installed"
	fi
fi

# 2. The fstab entry: one line after our marker, replaced when it differs.
touch "$FSTAB"
if grep -qxF "$entry" "$FSTAB"; then
	log "fstab already has: $entry"
else
	tmp=$(mktemp)
	# Drop an earlier entry of ours (the marker and the line after it) and
	# any other line for the same mount point.
	awk -v m="$marker" -v mp="$MOUNTPOINT" '
		$0 == m { skip = 1; next }
		skip { skip = 0; next }
		$2 == mp && $1 !~ /^#/ { next }
		{ print }' "$FSTAB" >"$tmp"
	printf '%s\n%s\n' "$marker" "$entry" >>"$tmp"
	cat "$tmp" >"$FSTAB"
	rm -f "$tmp"
	log "fstab: $entry"
fi
mkdir -p "$MOUNTPOINT"

# 3. Mount it, once the service answers.
if [[ $SKIP_MOUNT == 1 ]]; then
	log "SKIP_MOUNT=1: not mounting"
	exit 0
fi
if mountpoint -q "$MOUNTPOINT"; then
	log "$MOUNTPOINT is mounted"
	exit 0
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true # fstab changed: refresh the generated mount units
fi
log "waiting up to ${MOUNT_WAIT}s for $SERVER:$PORT"
deadline=$((SECONDS + MOUNT_WAIT))
until timeout 2 bash -c "exec 3<>/dev/tcp/$SERVER/$PORT" 2>/dev/null; do
	((SECONDS < deadline)) || die "$SERVER:$PORT does not answer after ${MOUNT_WAIT}s (is hanfsd running on the servers? 'hanfsd status --disk DISK' there)"
	sleep 2
done
mount "$MOUNTPOINT"
log "mounted $SERVER:$EXPORT_PATH on $MOUNTPOINT"
findmnt "$MOUNTPOINT" || true
