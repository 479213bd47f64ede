#!/usr/bin/env bash
# The local stack: PostgreSQL, Versity's S3 gateway, the registry
# simulator and etatcivil, on free loopback ports, state under .local/.
#
#   scripts/stack.sh tools        install what the stack and tests need
#   scripts/stack.sh up           start in the background, write .local/env
#   scripts/stack.sh down         stop what up started
#   scripts/stack.sh run          up, ingest the sample, wait for Ctrl-C, down
#   scripts/stack.sh demo         up, upload the sample --wait, check, down
#   scripts/stack.sh test [ARGS]  PostgreSQL + a private S3 gateway, go test
#                                 (TEST_PKGS=./internal/x/... narrows the packages)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL="$ROOT/.local"
BIN="$ROOT/bin"
RUN="$LOCAL/run"
LOG="$LOCAL/log"
VERSITYGW_VERSION=v1.8.0
EC="$BIN/etatcivil"

say() { printf '%s\n' "$*" >&2; }
die() { say "stack: $*"; exit 1; }

# --- tools -------------------------------------------------------------

apt_install() {
	# Installs Debian packages that are missing; a fresh machine needs them.
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "installez : ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	say "installation de ${missing[*]}…"
	$sudo apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

tools() {
	# go install builds report no version of their own: a marker file
	# records which one bin/versitygw is.
	if [ ! -x "$BIN/versitygw" ] || [ ! -f "$BIN/.versitygw-$VERSITYGW_VERSION" ]; then
		say "installation de versitygw $VERSITYGW_VERSION dans bin/…"
		GOBIN="$BIN" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
		touch "$BIN/.versitygw-$VERSITYGW_VERSION"
	fi
	# Independent PDF checkers used by the tests.
	apt_install qpdf poppler-utils libxml2-utils
}

# test_tools: what only the tests need: Debian's Chromium (the browser
# tests drive it with chromedp) and axe-core, pinned, from npm.
AXE_VERSION=4.11.4
test_tools() {
	apt_install chromium softhsm2
	command -v npm >/dev/null || apt_install npm
	local axe="$LOCAL/npm/axe-core-$AXE_VERSION/node_modules/axe-core/axe.min.js"
	if [ ! -f "$axe" ]; then
		say "installation d'axe-core $AXE_VERSION (npm)…"
		mkdir -p "$LOCAL/npm/axe-core-$AXE_VERSION"
		npm install --silent --no-audit --no-fund --prefix "$LOCAL/npm/axe-core-$AXE_VERSION" "axe-core@$AXE_VERSION" >/dev/null
	fi
	[ -f "$axe" ] || die "axe-core $AXE_VERSION introuvable après npm install"
	export ETATCIVIL_TEST_AXE="$axe"
	export ETATCIVIL_TEST_CHROMIUM="$(command -v chromium)"
	# Screenshots of the browser tests, kept after the run.
	export ETATCIVIL_TEST_ARTIFACTS="$LOCAL/artifacts"
}

# --- PostgreSQL ----------------------------------------------------------

# pg_base prints a libpq URL (without database) of a reachable server:
# ETATCIVIL_PG_BASE, else 127.0.0.1:5432, else a private cluster in .local/pg.
pg_base() {
	if [ -n "${ETATCIVIL_PG_BASE:-}" ]; then echo "$ETATCIVIL_PG_BASE"; return; fi
	command -v psql >/dev/null && command -v pg_isready >/dev/null || apt_install postgresql-client
	# ETATCIVIL_PG_PRIVATE=1 skips the shared server (to try the fresh-machine path).
	if [ "${ETATCIVIL_PG_PRIVATE:-}" != 1 ] && pg_isready -q -h 127.0.0.1 -p 5432 -t 2 && psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
		echo "postgres://postgres@127.0.0.1:5432"
		return
	fi
	private_pg
}

private_pg() {
	local dir="$LOCAL/pg"
	local port_file="$dir/port"
	if [ -f "$port_file" ] && pg_isready -q -h 127.0.0.1 -p "$(cat "$port_file")"; then
		echo "postgres://postgres@127.0.0.1:$(cat "$port_file")"
		return
	fi
	apt_install postgresql
	local pgbin
	pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	local runas=()
	if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u postgres --); fi
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		say "initialisation d'un PostgreSQL privé dans .local/pg…"
		"${runas[@]}" "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
	fi
	local port
	port=$("$EC" dev ports 1)
	echo "$port" >"$port_file"
	"${runas[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >/dev/null
	touch "$dir/started-by-stack"
	echo "postgres://postgres@127.0.0.1:$port"
}

stop_private_pg() {
	local dir="$LOCAL/pg"
	[ -f "$dir/started-by-stack" ] || return 0
	local pgbin runas=()
	pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u postgres --); fi
	"${runas[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -f "$dir/started-by-stack"
}

# db_name is this checkout's own database: etatcivil_ and the first 8 hex
# digits of the SHA-256 of the checkout's absolute path.
db_name() { echo "etatcivil_$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"; }

ensure_db() { # BASE NAME
	local exists
	exists=$(psql "$1/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$2'")
	[ "$exists" = 1 ] || psql "$1/postgres" -qc "CREATE DATABASE \"$2\"" >/dev/null
}

# --- processes -------------------------------------------------------------

start_bg() { # NAME CMD...
	local name=$1; shift
	mkdir -p "$RUN" "$LOG"
	nohup "$@" >>"$LOG/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}

stop_bg() { # NAME
	local f="$RUN/$1.pid"
	[ -f "$f" ] || return 0
	local pid
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

secret() { # FILE: a random secret kept in FILE
	if [ ! -s "$1" ]; then
		mkdir -p "$(dirname "$1")"
		(umask 077; head -c 32 /dev/urandom | sha256sum | cut -c1-48 >"$1")
	fi
	cat "$1"
}

start_s3() { # PORT DATADIR ACCESS SECRET NAME
	mkdir -p "$2/data" "$2/versions"
	ROOT_ACCESS_KEY="$3" ROOT_SECRET_KEY="$4" start_bg "$5" \
		"$BIN/versitygw" --port "127.0.0.1:$1" --quiet posix --versioning-dir "$2/versions" "$2/data"
}

# --- up / down ---------------------------------------------------------------

up() {
	tools
	[ -x "$EC" ] || die "bin/etatcivil manquant : make build"
	if [ -f "$RUN/serve.pid" ] && kill -0 "$(cat "$RUN/serve.pid")" 2>/dev/null; then
		say "la pile tourne déjà (make down pour l'arrêter)"
		return 0
	fi
	mkdir -p "$LOCAL/secrets"
	local base db
	if [ -n "${ETATCIVIL_DATABASE_URL:-}" ]; then
		db_url=$ETATCIVIL_DATABASE_URL
	else
		base=$(pg_base)
		db=$(db_name)
		ensure_db "$base" "$db"
		db_url="$base/$db?sslmode=disable"
	fi
	local ports api ops s3 sim tsaport
	ports=$("$EC" dev ports 5 | tr '\n' ' ')
	read -r api ops s3 sim tsaport <<<"$ports"
	api=${ETATCIVIL_ADDR:-127.0.0.1:$api}
	ops=${ETATCIVIL_OPS_ADDR:-127.0.0.1:$ops}
	local s3addr=${ETATCIVIL_S3_ADDR:-127.0.0.1:$s3}
	local simaddr=${ETATCIVIL_REGISTRY_SIM_ADDR:-127.0.0.1:$sim}
	local access secretkey pepper
	access=etatcivil-local
	secretkey=$(secret "$LOCAL/secrets/s3")
	pepper=$(secret "$LOCAL/secrets/pepper")

	start_s3 "${s3addr##*:}" "$LOCAL/s3" "$access" "$secretkey" s3
	start_bg registry-sim "$BIN/registry-sim" --addr "$simaddr" --state "$LOCAL/registry-sim.json"

	export ETATCIVIL_DATABASE_URL="$db_url"
	export ETATCIVIL_ADDR="$api" ETATCIVIL_OPS_ADDR="$ops"
	export ETATCIVIL_S3_ENDPOINT="http://$s3addr" ETATCIVIL_S3_REGION=us-east-1
	export ETATCIVIL_S3_BUCKET=etatcivil-archive ETATCIVIL_S3_STAGING_BUCKET=etatcivil-staging
	export ETATCIVIL_S3_ACCESS_KEY="$access" ETATCIVIL_S3_SECRET_KEY="$secretkey"
	export ETATCIVIL_TOKEN_PEPPER="$pepper" ETATCIVIL_RETENTION=1d
	# A clearly labelled development CA and seal: the default seal of every
	# hub without one of its own (hub set-seal). Its certificates name the
	# development OCSP responder and CRLs, which the TSA's address serves.
	# The address is kept from one run to the next (the certificates name
	# it; a new one means a new PKI, and acts sealed before no longer
	# verify), unless something else listens there now.
	local tsaaddr=${ETATCIVIL_TSA_ADDR:-}
	if [ -z "$tsaaddr" ]; then
		tsaaddr=127.0.0.1:$tsaport
		if [ -s "$LOCAL/pki/tsa-addr" ]; then
			local kept
			kept=$(cat "$LOCAL/pki/tsa-addr")
			if ! (exec 3<>"/dev/tcp/${kept%%:*}/${kept##*:}") 2>/dev/null; then
				tsaaddr=$kept
			fi
		fi
	fi
	mkdir -p "$LOCAL/pki"
	echo "$tsaaddr" >"$LOCAL/pki/tsa-addr"
	"$EC" dev pki "$LOCAL/pki" "http://$tsaaddr"
	# A local RFC 3161 time-stamp authority on the same PKI, with the OCSP
	# responder and CRLs: hubs seal at B-LT by default.
	start_bg tsa "$EC" dev tsa "$LOCAL/pki" "$tsaaddr"
	export ETATCIVIL_TSA_URL="http://$tsaaddr"
	export ETATCIVIL_TRUST_ROOTS="$LOCAL/pki/dev-root.pem:$LOCAL/pki/dev-tsa-root.pem"
	export ETATCIVIL_REGISTRY_SIM="http://$simaddr" ETATCIVIL_REGISTRIES_FILE="$ROOT/testdata/registries.local.yaml"
	export ETATCIVIL_SEAL_CERT="$LOCAL/pki/dev-seal.pem" ETATCIVIL_SEAL_KEY="$LOCAL/pki/dev-seal.key"

	"$EC" dev wait "http://$s3addr/" 30s
	"$EC" dev wait "http://$tsaaddr/" 30s
	"$EC" migrate
	"$EC" s3 init
	"$EC" cog import "$ROOT/internal/cog/data/cog.csv.gz"
	"$EC" hub create smica --if-missing --name "SMICA (Aveyron) — démonstration" --communes 12202,12145,12300

	start_bg serve "$EC" serve
	"$EC" dev wait "http://$ops/readyz" 60s || { tail -20 "$LOG/serve.log" >&2; die "etatcivil serve n'a pas démarré"; }
	"$EC" dev wait "http://$simaddr/healthz" 30s

	# Tokens live in the database: keep one pair per database.
	local admin hubtok tokdir
	tokdir="$LOCAL/secrets/tokens-$(printf '%s' "$db_url" | sha256sum | cut -c1-8)"
	mkdir -p "$tokdir"
	if [ ! -s "$tokdir/admin" ]; then
		(umask 077; "$EC" token create --role admin --name "admin local (make up)" >"$tokdir/admin")
	fi
	if [ ! -s "$tokdir/hub" ]; then
		(umask 077; "$EC" token create --role hub --hub smica --name "opérateur smica local (make up)" >"$tokdir/hub")
	fi
	if [ ! -s "$tokdir/townhall" ]; then
		(umask 077; "$EC" token create --role townhall --commune 12202 --name "mairie de Rodez locale (make up)" >"$tokdir/townhall")
	fi
	admin=$(cat "$tokdir/admin")
	hubtok=$(cat "$tokdir/hub")
	townhalltok=$(cat "$tokdir/townhall")
	umask 077
	cat >"$LOCAL/env" <<EOF
# Written by make up ($(date -u +%FT%TZ)). Source it: . .local/env
export ETATCIVIL_SERVER=http://$api
export ETATCIVIL_TOKEN=$admin
export ETATCIVIL_HUB_TOKEN=$hubtok
export ETATCIVIL_TOWNHALL_TOKEN=$townhalltok
export ETATCIVIL_OPS=http://$ops
export ETATCIVIL_ADDR=$api
export ETATCIVIL_OPS_ADDR=$ops
export ETATCIVIL_DATABASE_URL='$db_url'
export ETATCIVIL_S3_ENDPOINT=http://$s3addr
export ETATCIVIL_S3_REGION=us-east-1
export ETATCIVIL_S3_BUCKET=etatcivil-archive
export ETATCIVIL_S3_STAGING_BUCKET=etatcivil-staging
export ETATCIVIL_S3_ACCESS_KEY=$access
export ETATCIVIL_S3_SECRET_KEY=$secretkey
export ETATCIVIL_S3_DATA_DIR=$LOCAL/s3
export ETATCIVIL_REGISTRY_SIM=http://$simaddr
export ETATCIVIL_TSA_URL=http://$tsaaddr
export ETATCIVIL_TRUST_ROOTS=$LOCAL/pki/dev-root.pem:$LOCAL/pki/dev-tsa-root.pem
export ETATCIVIL_REGISTRIES_FILE=$ROOT/testdata/registries.local.yaml
export ETATCIVIL_TOKEN_PEPPER=$pepper
export ETATCIVIL_RETENTION=1d
export ETATCIVIL_SEAL_CERT=$LOCAL/pki/dev-seal.pem
export ETATCIVIL_SEAL_KEY=$LOCAL/pki/dev-seal.key
export ETATCIVIL_DEV_ROOT=$LOCAL/pki/dev-root.pem
EOF
	say "pile locale prête : API http://$api, opérations http://$ops, S3 http://$s3addr, simulateur http://$simaddr"
	say "variables : . .local/env"
}

down() {
	stop_bg serve
	stop_bg registry-sim
	stop_bg tsa
	stop_bg s3
	stop_private_pg
	rm -f "$LOCAL/env"
	say "pile locale arrêtée"
}

# --- run / demo --------------------------------------------------------------

run() {
	trap 'down; exit 0' INT TERM
	up
	# shellcheck disable=SC1091
	. "$LOCAL/env"
	say "envoi du lot d'exemple testdata/sample/…"
	ETATCIVIL_TOKEN=$ETATCIVIL_HUB_TOKEN "$EC" upload --wait --timeout 5m "$ROOT/testdata/sample" || true
	cat >&2 <<EOF

etatcivil tourne :
  pages          $ETATCIVIL_SERVER/  (connexion avec un des jetons ci-dessous)
  API            $ETATCIVIL_SERVER/api/v1
  opérations     $ETATCIVIL_OPS/readyz  $ETATCIVIL_OPS/metrics
  simulateur     $ETATCIVIL_REGISTRY_SIM/_sim/stats
  jeton admin    $ETATCIVIL_TOKEN
  jeton smica    $ETATCIVIL_HUB_TOKEN
  jeton Rodez    $ETATCIVIL_TOWNHALL_TOKEN
Dans un autre terminal : . .local/env && bin/etatcivil acts list
Ctrl-C arrête tout.
EOF
	while :; do sleep 1 & wait $! || true; done
}

demo() {
	trap down EXIT
	up
	# shellcheck disable=SC1091
	. "$LOCAL/env"
	local out="$LOCAL/demo-batch.json"
	ETATCIVIL_TOKEN=$ETATCIVIL_HUB_TOKEN "$EC" upload --wait --timeout 5m --json "$ROOT/testdata/sample" >"$out"
	"$EC" dev expect "$ROOT/testdata/sample" "$out"
}

# --- test --------------------------------------------------------------------

test_() {
	tools
	test_tools
	[ -x "$EC" ] || die "bin/etatcivil manquant : make build"
	TEST_HAD_PG=0
	[ -f "$LOCAL/pg/started-by-stack" ] && TEST_HAD_PG=1
	local base
	base=$(pg_base)
	TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/etatcivil-test-s3.XXXXXX")
	local port
	port=$("$EC" dev ports 1)
	local key=etatcivil-test secretkey
	secretkey=$(head -c 16 /dev/urandom | sha256sum | cut -c1-32)
	RUN="$TEST_DIR/run" LOG="$TEST_DIR/log" start_s3 "$port" "$TEST_DIR" "$key" "$secretkey" s3
	TEST_S3_PID=$(cat "$TEST_DIR/run/s3.pid")
	# Stop what this run started: the S3 gateway, and a private PostgreSQL
	# if none was running before.
	trap 'kill $TEST_S3_PID 2>/dev/null || true; wait $TEST_S3_PID 2>/dev/null || true; rm -rf "$TEST_DIR"; [ $TEST_HAD_PG = 1 ] || stop_private_pg' EXIT
	"$EC" dev wait "http://127.0.0.1:$port/" 30s
	export ETATCIVIL_TEST_PG_BASE="$base"
	export ETATCIVIL_TEST_S3_ENDPOINT="127.0.0.1:$port"
	export ETATCIVIL_TEST_S3_ACCESS_KEY="$key" ETATCIVIL_TEST_S3_SECRET_KEY="$secretkey"
	export ETATCIVIL_TEST_S3_DATA_DIR="$TEST_DIR"
	export ETATCIVIL_TEST_BIN="$BIN"
	if [ "${STACK_BENCH:-}" = 1 ]; then
		# Benchmarks run without the race detector, which would distort them.
		# A million acts are loaded by BenchmarkFollowMillion: past go test's
		# default 10-minute limit on this machine.
		go test -count=1 -timeout 60m -run '^$' -bench . -benchtime "${BENCHTIME:-1x}" "$@" ${TEST_PKGS:-./...}
	elif [ "${STACK_FUZZ:-}" = 1 ]; then
		# Every fuzz target of the repository, each for FUZZTIME (10 s by
		# default); a crash is written to the package's testdata/fuzz/ and
		# fails the run: committed, it is a regression test of make test.
		local file fn
		while IFS=: read -r file fn; do
			fn=${fn#func }
			say "fuzz : $fn ($(dirname "$file"))"
			go test -count=1 -run '^$' -fuzz "^$fn\$" -fuzztime "${FUZZTIME:-10s}" "./$(dirname "$file")"
		done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal | sort)
	else
		go test -race -count=1 -timeout "${GO_TEST_TIMEOUT:-30m}" "$@" ${TEST_PKGS:-./...}
	fi
}

# make vulncheck: govulncheck with an offline database. The Go
# vulnerability database is the golang.org/x/vulndb module (its
# data/osv/*.json), pinned here; its indexdb command writes the v1
# database govulncheck reads with -db file://. Built once in .local/.
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION=v1.9.0
vulncheck() {
	local db="$LOCAL/vulndb-$VULNDB_VERSION"
	if [ ! -f "$db/index/db.json" ]; then
		local src
		src=$(cd "$ROOT" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
		[ -d "$src/data/osv" ] || die "golang.org/x/vulndb@$VULNDB_VERSION : data/osv absent"
		say "base de vulnérabilités hors ligne : $(ls "$src/data/osv" | wc -l) rapports OSV…"
		rm -rf "$db.tmp"
		(cd "$ROOT" && GOFLAGS=-mod=mod go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp")
		mv "$db.tmp" "$db"
	fi
	(cd "$ROOT" && go run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$db" ./...)
}

# make test-faults: the fault suite (internal/e2e TestFaults) against a
# test stack, FAULTS_ACTS acts per fault (1,000 here; 200 in make test),
# then its summary: one line per fault.
faults() {
	mkdir -p "$LOCAL"
	local log="$LOCAL/faults.log" rc=0
	FAULTS_ACTS=${FAULTS_ACTS:-1000} GO_TEST_TIMEOUT=90m TEST_PKGS=./internal/e2e/ test_ -run '^TestFaults$' -v "$@" 2>&1 | tee "$log" || rc=$?
	say "--- fautes ---"
	grep '^fault=' "$log" >&2 || true
	return $rc
}

# make bench: the Go benchmarks (against a test stack), then the pipeline
# beside its floor and the standalone tools (against make up's stack):
# etatcivil-bench, BENCH_ACTS acts (2000 by default), report in
# .local/bench/latest.json.
bench_() {
	(STACK_BENCH=1 test_ "$@")
	trap down EXIT
	up
	# shellcheck disable=SC1091
	. "$LOCAL/env"
	"$BIN/etatcivil-bench"
}

cmd=${1:-}
shift || true
case "$cmd" in
tools) tools ;;
up) up ;;
down) down ;;
run) run ;;
demo) demo ;;
test) test_ "$@" ;;
bench) bench_ "$@" ;;
fuzz) STACK_FUZZ=1 test_ "$@" ;;
faults) faults "$@" ;;
vulncheck) vulncheck ;;
db-name) db_name ;;
*) die "usage: $0 tools|up|down|run|demo|test|fuzz|bench" ;;
esac
