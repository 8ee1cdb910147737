# A throwaway PostgreSQL server for the tests of pgstore. Source it:
#
#	source .ci/postgres.sh
#
# It installs Debian's postgresql package when no server binaries are found,
# runs initdb into a new temporary directory as an unprivileged user (initdb
# refuses root), starts the server on 127.0.0.1 on a free port, creates the
# database workflow_test, exports WORKFLOW_TEST_PG_DSN, and sets an EXIT
# trap that stops the server and removes the directory. The pgstore tests
# read WORKFLOW_TEST_PG_DSN; with CI set they fail without it.
#
# The trap replaces any EXIT trap of the shell; a caller that needs its own
# calls wfpg_stop from it. The server is for tests only: fsync,
# synchronous_commit and full_page_writes are off.
# WORKFLOW_PG_DURABLE=1 keeps PostgreSQL's defaults (for benchmarks that
# should pay for durable commits).

wfpg_log() { echo "postgres.sh: $*" >&2; }

# wfpg_bindir prints the bin directory of the newest PostgreSQL with
# initdb, pg_ctl and postgres, or fails.
wfpg_bindir() {
	local d best
	best=$(for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
			echo "$d"
		fi
	done | sort -t/ -k5,5n | tail -n 1)
	if [ -z "$best" ]; then
		return 1
	fi
	echo "$best"
}

# wfpg_install installs Debian's postgresql package without letting it create
# and start a cluster of its own.
wfpg_install() {
	local sudo=""
	if [ "$(id -u)" != 0 ]; then
		if ! command -v sudo >/dev/null; then
			wfpg_log "PostgreSQL is not installed, and installing it needs root: apt-get install postgresql"
			return 1
		fi
		sudo=sudo
	fi
	wfpg_log "installing Debian's postgresql package"
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		$sudo mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
	fi
	if ! $sudo apt-get update -qq >/dev/null; then
		wfpg_log "apt-get update failed"
		return 1
	fi
	if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confold postgresql >/dev/null; then
		wfpg_log "apt-get install postgresql failed"
		return 1
	fi
}

# wfpg_free_port prints a TCP port on 127.0.0.1 that nothing listens on.
wfpg_free_port() {
	local port tries
	for tries in $(seq 1 100); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# wfpg_as runs a command as the server's user.
wfpg_as() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u "$WFPG_USER" -- "$@")
	else
		"$@"
	fi
}

wfpg_stop() {
	if [ -n "${WFPG_DATA:-}" ] && [ -d "$WFPG_DATA" ]; then
		wfpg_as "$WFPG_BIN/pg_ctl" -D "$WFPG_DATA/data" -m immediate -w stop >/dev/null 2>&1 || true
		rm -rf "$WFPG_DATA"
	fi
	WFPG_DATA=""
}

wfpg_start() {
	WFPG_BIN=$(wfpg_bindir) || true
	if [ -z "$WFPG_BIN" ]; then
		wfpg_install || return 1
		WFPG_BIN=$(wfpg_bindir) || true
		if [ -z "$WFPG_BIN" ]; then
			wfpg_log "no initdb, pg_ctl and postgres under /usr/lib/postgresql/*/bin after installing postgresql"
			return 1
		fi
	fi

	# initdb refuses root: as root, the server runs as postgres (made by
	# the Debian package), or nobody.
	WFPG_USER=$(id -un)
	if [ "$(id -u)" = 0 ]; then
		WFPG_USER=nobody
		if id postgres >/dev/null 2>&1; then
			WFPG_USER=postgres
		fi
	fi

	WFPG_DATA=$(mktemp -d /tmp/wfpg.XXXXXX)
	chmod 755 "$WFPG_DATA"
	mkdir "$WFPG_DATA/data"
	if [ "$(id -u)" = 0 ]; then
		chown "$WFPG_USER" "$WFPG_DATA" "$WFPG_DATA/data"
	fi
	if ! wfpg_as "$WFPG_BIN/initdb" -D "$WFPG_DATA/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		>"$WFPG_DATA/initdb.log" 2>&1; then
		wfpg_log "initdb failed:"
		cat "$WFPG_DATA/initdb.log" >&2
		wfpg_stop
		return 1
	fi

	local opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$WFPG_DATA -c max_connections=300"
	if [ "${WORKFLOW_PG_DURABLE:-}" != 1 ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	local tries port=""
	for tries in 1 2 3 4 5; do
		port=$(wfpg_free_port) || {
			wfpg_log "no free port found"
			wfpg_stop
			return 1
		}
		# -w waits until the server accepts connections (60 s at most).
		if wfpg_as "$WFPG_BIN/pg_ctl" -D "$WFPG_DATA/data" -l "$WFPG_DATA/server.log" -w -t 60 \
			-o "$opts -p $port" start >/dev/null; then
			break
		fi
		wfpg_log "the server did not start on port $port (try $tries):"
		tail -n 5 "$WFPG_DATA/server.log" >&2 || true
		port=""
	done
	if [ -z "$port" ]; then
		wfpg_stop
		return 1
	fi
	local i
	for i in $(seq 1 100); do
		if "$WFPG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
			break
		fi
		sleep 0.1
	done
	if ! "$WFPG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres workflow_test; then
		wfpg_log "createdb failed"
		wfpg_stop
		return 1
	fi
	export WORKFLOW_TEST_PG_DSN="postgres://postgres@127.0.0.1:$port/workflow_test?sslmode=disable"
	wfpg_log "PostgreSQL $("$WFPG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $WFPG_DATA"
}

trap wfpg_stop EXIT
wfpg_start
