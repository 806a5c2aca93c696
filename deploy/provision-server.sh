#!/usr/bin/env bash
# provision-server.sh: install and start one hanfsd node (a hanfs server).
#
# Idempotent: run it again with the same settings and nothing changes (the
# service is not restarted; the disk is never formatted twice). Settings come
# from the environment:
#
#   NODE_ID       this node's id, 1..16 (required)
#   DISK          the shared block device or image file (required)
#   NODE_ADDR     this node's address on the server network (default 127.0.0.1)
#   HEARTBEAT     UDP heartbeat address (default NODE_ADDR:7000)
#   PEERS         the other nodes, "ID=HOST:PORT" separated by spaces or commas
#   VIP           virtual service address ADDR/BITS; empty: no virtual address
#   VIP_DEV       interface for VIP (default: the one holding NODE_ADDR)
#   LISTEN        NFS service address (default VIP's address:2049, or NODE_ADDR:2049)
#   METRICS       HTTP /metrics and /status address (default NODE_ADDR:9049; "" turns it off)
#   EXPORTS       export specs "PATH NETWORKS OPTIONS", separated by ";"
#                 (default: "/ 127.0.0.0/8 rw,root_squash")
#   FORMAT        1: format DISK if it holds no hanfs file system (do this on
#                 ONE node only); 0 (default): wait for another node to format it
#   FORMAT_OPTS   extra "hanfsd format" flags (e.g. "--label lab")
#   FORMAT_WAIT   seconds to wait for the disk to be formatted (default 600)
#   HANFSD_BIN    the hanfsd binary to install (default /vagrant/bin/hanfsd)
#   HANFSD_OPTS   extra "hanfsd serve" flags for /etc/default/hanfsd (timing;
#                 the same on every node)
#   DEPLOY_DIR    where hanfsd.service and hanfsd-vip-cleanup are (default: this script's directory)
#   PREFIX        install prefix (default /usr/local): PREFIX/bin/hanfsd
#   ETC_DIR       configuration root (default /etc): ETC_DIR/hanfs/hanfsd.conf
#   SYSTEMD_DIR   unit directory (default /etc/systemd/system)
#   SKIP_SYSTEMCTL=1  install files only; do not enable or start the service
#
# PREFIX, ETC_DIR and SYSTEMD_DIR let it install into a scratch root (the
# tests in test/vagrant_test.go do); the installed unit then names those paths.
set -euo pipefail

log() { echo "provision-server: $*"; }
die() { echo "provision-server: error: $*" >&2; exit 1; }

NODE_ID=${NODE_ID:-}
DISK=${DISK:-}
NODE_ADDR=${NODE_ADDR:-127.0.0.1}
HEARTBEAT=${HEARTBEAT:-$NODE_ADDR:7000}
PEERS=${PEERS:-}
VIP=${VIP:-}
VIP_DEV=${VIP_DEV:-}
METRICS=${METRICS-$NODE_ADDR:9049}
EXPORTS=${EXPORTS:-/ 127.0.0.0/8 rw,root_squash}
FORMAT=${FORMAT:-0}
FORMAT_OPTS=${FORMAT_OPTS:-}
FORMAT_WAIT=${FORMAT_WAIT:-600}
HANFSD_BIN=${HANFSD_BIN:-/vagrant/bin/hanfsd}
HANFSD_OPTS=${HANFSD_OPTS:-}
DEPLOY_DIR=${DEPLOY_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
PREFIX=${PREFIX:-/usr/local}
ETC_DIR=${ETC_DIR:-/etc}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
SKIP_SYSTEMCTL=${SKIP_SYSTEMCTL:-0}

if ! [[ $NODE_ID =~ ^[0-9]{1,2}$ ]] || ((10#$NODE_ID < 1 || 10#$NODE_ID > 16)); then
	die "NODE_ID must be 1..16 (got '${NODE_ID}')"
fi
NODE_ID=$((10#$NODE_ID))
[[ -n $DISK ]] || die "DISK is required (the shared block device or image file)"
[[ -e $DISK ]] || die "DISK $DISK does not exist"
[[ -x $HANFSD_BIN ]] || die "HANFSD_BIN $HANFSD_BIN is not an executable (run 'make build' on the host; in the Vagrant lab then 'vagrant rsync')"
[[ -f $DEPLOY_DIR/hanfsd.service ]] || die "$DEPLOY_DIR/hanfsd.service not found (set DEPLOY_DIR)"

if [[ -n $VIP ]]; then
	[[ $VIP == */* ]] || die "VIP must be ADDR/BITS (got '$VIP')"
	if [[ -z $VIP_DEV ]]; then
		VIP_DEV=$(ip -4 -o addr show 2>/dev/null | awk -v a="$NODE_ADDR" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }')
		[[ -n $VIP_DEV ]] || die "no interface holds NODE_ADDR $NODE_ADDR; set VIP_DEV"
	fi
	LISTEN=${LISTEN:-${VIP%/*}:2049}
else
	LISTEN=${LISTEN:-$NODE_ADDR:2049}
fi

changed=0 # set when a file the running service uses changed

# install_file SRC DST MODE: copy when the content differs; atomic rename, so
# a running binary is replaced safely.
install_file() {
	local src=$1 dst=$2 mode=$3
	if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
		log "unchanged: $dst"
		return 0
	fi
	mkdir -p "$(dirname "$dst")"
	install -m "$mode" "$src" "$dst.new.$$"
	mv -f "$dst.new.$$" "$dst"
	log "installed: $dst"
	changed=1
}

# write_file DST MODE: write stdin to DST when it differs. Call it with a
# redirect, never at the end of a pipe (a pipe would run it in a subshell and
# lose "changed").
write_file() {
	local dst=$1 mode=$2 tmp
	tmp=$(mktemp)
	cat >"$tmp"
	install_file "$tmp" "$dst" "$mode"
	rm -f "$tmp"
}

# is_hanfs DISK: true when either superblock copy carries the hanfs magic.
# The read bypasses the page cache where it can: another node may just have
# formatted the shared disk.
read_magic() {
	local block=$1
	{ dd if="$DISK" bs=4096 skip="$block" count=1 iflag=direct status=none 2>/dev/null ||
		dd if="$DISK" bs=4096 skip="$block" count=1 status=none 2>/dev/null; } | head -c 8 | tr -d '\0'
}
is_hanfs() {
	[[ $(read_magic 0) == HANFSSB1 || $(read_magic 1) == HANFSSB1 ]]
}

# 1. The binary and the helper.
install_file "$HANFSD_BIN" "$PREFIX/bin/hanfsd" 0755
install_file "$DEPLOY_DIR/hanfsd-vip-cleanup" "$PREFIX/lib/hanfs/hanfsd-vip-cleanup" 0755
HANFSD=$PREFIX/bin/hanfsd

# 2. The disk: formatted exactly once, by the node given FORMAT=1.
if is_hanfs; then
	log "disk $DISK already holds a hanfs file system: not formatting"
elif [[ $FORMAT == 1 ]]; then
	log "formatting $DISK"
	# format refuses a disk holding a hanfs file system or other data; a
	# hanfs file system that appeared meanwhile (another node formatted it)
	# is fine, anything else stops here: never --force.
	# shellcheck disable=SC2086
	if ! out=$("$HANFSD" format --disk "$DISK" $FORMAT_OPTS 2>&1); then
		if [[ $out == *"holds hanfs file system"* ]]; then
			log "disk $DISK already holds a hanfs file system: not formatting"
		else
			die "hanfsd format --disk $DISK failed: $out"
		fi
	else
		echo "$out"
	fi
else
	log "waiting up to ${FORMAT_WAIT}s for another node to format $DISK"
	deadline=$((SECONDS + FORMAT_WAIT))
	until is_hanfs; do
		((SECONDS < deadline)) || die "$DISK holds no hanfs file system after ${FORMAT_WAIT}s (format it from one node: FORMAT=1)"
		sleep 1
	done
	log "disk $DISK holds a hanfs file system"
fi

# 3. The node's config file and serve flags.
node_config() {
	echo "# Written by deploy/provision-server.sh; see hanfsd.conf.example for every setting."
	echo "disk $DISK"
	echo "node $NODE_ID"
	echo "heartbeat $HEARTBEAT"
	local p x
	for p in ${PEERS//,/ }; do
		[[ $p == [0-9]*=?* ]] || die "PEERS entry '$p' is not ID=HOST:PORT"
		echo "peer $p"
	done
	echo "listen $LISTEN"
	if [[ -n $VIP ]]; then
		echo "vip $VIP"
		echo "vip-dev $VIP_DEV"
	fi
	if [[ -n $METRICS ]]; then
		echo "metrics $METRICS"
	fi
	local -a exports
	IFS=';' read -ra exports <<<"$EXPORTS"
	for x in "${exports[@]}"; do
		x=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$x")
		if [[ -n $x ]]; then
			echo "export $x"
		fi
	done
}
conf_tmp=$(mktemp)
trap 'rm -f "$conf_tmp"' EXIT
node_config >"$conf_tmp"
write_file "$ETC_DIR/hanfs/hanfsd.conf" 0644 <"$conf_tmp"

write_file "$ETC_DIR/default/hanfsd" 0644 <<EOT
# Extra flags for hanfsd serve (deploy/hanfsd.service). The timing flags must
# be the same on every node.
HANFSD_OPTS="$HANFSD_OPTS"
EOT

# 4. The unit, naming the paths used here.
sed -e "s#/usr/local/lib/hanfs/#$PREFIX/lib/hanfs/#g" \
	-e "s#/usr/local/bin/hanfsd#$PREFIX/bin/hanfsd#g" \
	-e "s#/etc/hanfs/#$ETC_DIR/hanfs/#g" \
	-e "s#/etc/default/hanfsd#$ETC_DIR/default/hanfsd#g" \
	"$DEPLOY_DIR/hanfsd.service" >"$conf_tmp"
before=$changed
changed=0
write_file "$SYSTEMD_DIR/hanfsd.service" 0644 <"$conf_tmp"
unit_file_changed=$changed
changed=$((before | changed))

# 5. The service.
if [[ $SKIP_SYSTEMCTL == 1 ]]; then
	log "SKIP_SYSTEMCTL=1: not starting hanfsd (config $ETC_DIR/hanfs/hanfsd.conf)"
	exit 0
fi
if ((unit_file_changed)); then
	systemctl daemon-reload
fi
systemctl enable hanfsd.service >/dev/null 2>&1 || systemctl enable hanfsd.service
if ! systemctl is-active --quiet hanfsd.service; then
	log "starting hanfsd"
	systemctl start hanfsd.service
elif ((changed)); then
	# A restart of the primary is a failover (clients pause, nothing fails).
	log "settings changed: restarting hanfsd"
	systemctl restart hanfsd.service
else
	log "hanfsd is running with these settings"
fi
# Show the cluster as the disk sees it (informational).
sleep 2
"$HANFSD" status --disk "$DISK" || true
