#!/usr/bin/env bash
# Reliability and security checks of Tillgate (issue 7) against the real, release-built
# tillgate-server on loopback. Run by scripts/test.sh; runs alone as well.
#
#   crash       SIGKILL under concurrent ingest, restart, exactly-once + gapless + chain
#               (SQLite and PostgreSQL, and two replicas on one PostgreSQL with one
#               killed at a time; PostgreSQL at TILLGATE_TEST_PG_URL, default
#               postgres://postgres@127.0.0.1:5432/test; without a usable PostgreSQL its
#               tests are reported as skipped, or fail when TILLGATE_REQUIRE_PG=1, which
#               scripts/test.sh sets on CI)
#   disk        SQLite on a small tmpfs that fills up under ingest: 503 while full, then
#               exactly-once + gapless + chain once space is back. Mounting needs root
#               (CI runs as root, so it runs there); without root the test is reported as
#               skipped, not failed
#   security    tenancy matrix, revocation, hashed storage, replays, rate limits, log scan,
#               size limits, slow clients, forged / out-of-window JWS, tampered local data, RVE
#   schema      schemathesis against /openapi.json: no 5xx, responses match the schema,
#               without credentials, with a register key, with the admin key
#   load        64 connections on handshake and transaction submit: zero errors, p50/p99
#   crosscheck  PyJWT + cryptography, node jose, PyNaCl/libsodium vs core,
#               Wycheproof-style Ed25519 refusals, dynamic-key derive vectors recomputed
#               with argon2-cffi + libsodium
#
# Prints `<part>: N passed, N failed` per part (`, N skipped` when tests skipped; a skip
# is never counted as passed); exits non-zero if any part fails. A part whose tests all
# skipped is listed as skipped, not failed. Skips are also appended to $TILLGATE_SKIP_LOG
# (set by scripts/test.sh, which lists them in its summary; when run alone, a fresh
# target/test-logs/reliability/skips.txt).
# Installs what it needs idempotently (Debian packages via apt-get, Python packages into
# a venv under ~/.cache/tillgate-reliability, npm packages into tests/reliability/js).
#
# Knobs: TILLGATE_SCHEMA_EXAMPLES (default 25 per operation), TILLGATE_LOAD_SECS (5),
# TILLGATE_LOAD_CONNS (64), TILLGATE_RELIABILITY_SEED (repeat a crash run's kill timings),
# TILLGATE_RELIABILITY_PARTS (e.g. "crash load" to run only some parts).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=never
logs="$root/target/test-logs/reliability"
mkdir -p "$logs"
# Skips the tests report (scripts/test.sh sets this and lists them; alone, a fresh list
# for this run).
if [ -z "${TILLGATE_SKIP_LOG:-}" ]; then
  export TILLGATE_SKIP_LOG="$logs/skips.txt"
  : >"$TILLGATE_SKIP_LOG"
fi
# Where cargo puts the release binaries (CARGO_TARGET_DIR when set).
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
parts="${TILLGATE_RELIABILITY_PARTS:-crash disk security schema load crosscheck}"
admin_key="Reliability-Admin-Key-0123456789"   # = tillgate_reliability::ADMIN_KEY
failed_parts=()
passed_parts=()
skipped_parts=()

want() { [[ " $parts " == *" $1 "* ]]; }
note() { echo "  $*"; }

# ---- setup (idempotent) ---------------------------------------------------------------
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
apt_install() { # package... (only those missing)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  $sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}
setup() {
  command -v psql >/dev/null || apt_install postgresql-client
  command -v node >/dev/null || apt_install nodejs npm
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/tillgate-reliability"
  venv="$cache/venv"
  local req="tests/reliability/py/requirements.txt"
  local stamp="$venv/.tillgate-requirements"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$stamp"; then
    mkdir -p "$cache"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --upgrade pip >/dev/null || return 1
    "$venv/bin/pip" install -q -r "$req" || return 1
    cp "$req" "$stamp"
  fi
  local js=tests/reliability/js
  if [ "$(node -p "try{require('./$js/node_modules/jose/package.json').version}catch(e){''}")" \
       != "$(node -p "require('./$js/package.json').dependencies.jose")" ]; then
    (cd tests/reliability/js && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
  cargo build --release -q -p tillgate-server -p tillgate-reliability --bins || return 1
}
echo "==> setup (venv, npm, release build)"
if ! setup >"$logs/setup.log" 2>&1; then
  tail -40 "$logs/setup.log"; echo "reliability setup failed"; exit 1
fi
PY="$venv/bin/python"
SERVER_BIN="$target_dir/release/tillgate-server"
export TILLGATE_SERVER_BIN="$SERVER_BIN"

# ---- a server child for the Python/schema/load parts ----------------------------------
server_pid=""; server_dir=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null
  fi
  [ -n "$server_dir" ] && rm -rf "$server_dir"
  server_pid=""; server_dir=""
}
trap stop_server EXIT
start_server() { # name: SQLite in a temp dir, free port, rate limits off; sets BASE
  stop_server
  server_dir=$(mktemp -d /tmp/tillgate-rel-XXXXXX)
  local port; port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BASE="http://127.0.0.1:$port"
  server_log="$logs/server-$1.log"
  env -u DATABASE_URL TILLGATE_BIND="127.0.0.1:$port" TILLGATE_DATA_DIR="$server_dir" \
    TILLGATE_ADMIN_KEY="$admin_key" TILLGATE_ACTIVATION_RATE=0 TILLGATE_AUTH_FAILURE_RATE=0 \
    RUST_LOG=info,sqlx=warn "$SERVER_BIN" >"$server_log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 150); do
    "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1]+"/readyz", timeout=1)' "$BASE" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start:"; tail -20 "$server_log"; return 1
}

finish_part() { # name passed failed [extra] [skipped]
  local skipped=${5:-0}
  echo "$1: $2 passed, $3 failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")${4:+ ($4)}"
  if [ "$3" != 0 ]; then failed_parts+=("$1")
  elif [ "$2" -gt 0 ]; then passed_parts+=("$1")
  elif [ "$skipped" -gt 0 ]; then skipped_parts+=("$1")
  else failed_parts+=("$1")   # nothing ran at all
  fi
}

# cargo test output -> counts (the raw log stays in $logs, so its "test result:" lines are
# not counted twice by scripts/test.sh).
cargo_part() { # part test-target [libtest args...]
  local part=$1 target=$2 log="$logs/$1.log" start=$SECONDS
  shift 2
  echo "==> $part"
  # --workspace: the same feature set as `cargo test --workspace`, so nothing is rebuilt.
  cargo test -q --workspace --test "$target" -- --ignored --nocapture --test-threads=1 "$@" >"$log" 2>&1
  local rc=$?
  local p f
  read -r p f < <(awk '/^test result: /{for(i=1;i<=NF;i++){if($i=="passed;")p+=$(i-1);if($i=="failed;")f+=$(i-1)}} END{print p+0, f+0}' "$log")
  grep -oE '(SKIP .*|crash safety \[.*|faults over: .*|disk full after .*|[0-9]+ transactions acknowledged.*|[0-9]+ acknowledged by another replica.*|tenancy: .*|descriptors: .*|logs \(.*)' "$log" | sed 's/^/  /'
  if [ $rc != 0 ]; then
    [ "$f" = 0 ] && f=1
    grep -E -A12 'panicked|^error' "$log" | head -40 | sed 's/^/    /'
  fi
  # A test that skips prints `SKIP <test>: <reason>` on stderr; libtest's terse output
  # may have put its progress dots in front of it on the same line (`..SKIP ...`).
  local skips; skips=$(grep -cE '^[.]*SKIP ' "$log")
  local ran=$((p - skips)); [ "$ran" -lt 0 ] && ran=0
  finish_part "$part" "$ran" "$f" "$((SECONDS-start)) s" "$skips"
}

want crash && cargo_part crash crash
want disk && cargo_part disk disk_full
want security && cargo_part security security

# ---- schema fuzzing -----------------------------------------------------------------
schema_part() {
  echo "==> schema"
  local start=$SECONDS p=0 f=0 n="${TILLGATE_SCHEMA_EXAMPLES:-25}"
  start_server schema || { finish_part schema 0 1 "server did not start"; return; }
  # A real registration, approved, so that authenticated operations reach their logic.
  local reg
  reg=$("$PY" - "$BASE" "$admin_key" <<'PY'
import datetime, json, sys, urllib.request
base, admin = sys.argv[1], sys.argv[2]
def call(method, path, body=None, headers={}):
    req = urllib.request.Request(base + path, method=method, headers={"content-type": "application/json", **headers},
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())
d = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
f = "%Y-%m-%dT%H:%M:%SZ"
a = call("POST", "/activations-advanced", {"cashRegisterName": "Schema", "deviceId": "schema-dev",
    "validFrom": d.strftime(f), "validTo": (d + datetime.timedelta(days=30)).strftime(f),
    "corporateId": "556036-0793", "applicationPackage": "com.example.pos"})
call("POST", f"/admin/activations/{a['activationId']}/approve", {}, {"authorization": f"Bearer {admin}"})
call("POST", "/transactions", {"type": "sale", "currency": "SEK", "total": 100, "vat": [{"rate": 2500, "amount": 20}],
    "items": [{"name": "Kaffe", "quantity": 1, "amount": 100}]}, {"authorization": f"Bearer {a['apiKey']}", "idempotency-key": "s1"})
print(a["apiKey"])
PY
) || { finish_part schema 0 1 "fixture failed"; return; }
  local st="$venv/bin/schemathesis"
  local common=(--checks not_a_server_error,response_schema_conformance,content_type_conformance
                --max-examples "$n" --workers 2 --no-color --request-timeout 20
                --report junit --report-dir "$logs/schemathesis")
  run_st() { # label args...
    local label=$1; shift
    local log="$logs/schema-$label.log" rc=0
    timeout 300 "$st" run "$BASE/openapi.json" "${common[@]}" "$@" >"$log" 2>&1 || rc=$?
    local summary; summary=$(grep -Eo '[0-9]+ generated, .*' "$log" | tail -1)
    # schemathesis also exits non-zero for its own internal errors. One is known and is
    # not about the server: CPython's "AST constructor recursion depth mismatch" raised
    # while hypothesis describes a lambda. Such a run passes when no check failed and
    # every error is that one; any other error (a network error may be a crashed
    # server) fails.
    local runtime ast
    runtime=$(grep -c '^Runtime Error$' "$log"); ast=$(grep -c '^AST constructor recursion depth mismatch' "$log")
    if [ $rc != 0 ] && ! grep -q '^Failures:' "$log" && ! grep -q 'Network Error' "$log" \
       && [ "$runtime" -gt 0 ] && [ "$runtime" = "$ast" ]; then
      p=$((p+1)); note "schemathesis $label: $summary; $runtime operation(s) cut short by a known schemathesis/CPython internal error (not a server response)"
    elif [ $rc = 0 ]; then
      p=$((p+1)); note "schemathesis $label: $summary"
    else
      f=$((f+1)); note "schemathesis $label FAILED: see $logs/schema-$label.log"
      grep -E '^(_{5,}|- ST|    Received|\[5[0-9][0-9]\])' "$logs/schema-$label.log" | head -30 | sed 's/^/    /'
    fi
  }
  # The admin run goes last: its stateful phase may revoke the registration it finds.
  run_st no-credentials
  run_st register-key -H "X-Api-Key: $reg" --exclude-tag admin
  run_st register-bearer -H "Authorization: Bearer $reg" --exclude-tag admin --phases examples,coverage
  run_st admin-key -H "Authorization: Bearer $admin_key" --include-tag admin
  # Informational: status codes the OpenAPI document does not list (not a failure).
  timeout 120 "$st" run "$BASE/openapi.json" --checks status_code_conformance --max-examples 5 --workers 2 \
    --no-color --phases examples,coverage -H "X-Api-Key: $reg" >"$logs/schema-undocumented.log" 2>&1
  note "informational: $(grep -Eo 'ST103 Undocumented status code: [0-9]+' "$logs/schema-undocumented.log" | tail -1 || echo 'no undocumented status codes') (see $logs/schema-undocumented.log)"
  if grep -q 'panicked' "$server_log"; then f=$((f+1)); note "the server panicked: $server_log"; fi
  stop_server
  finish_part schema "$p" "$f" "$((SECONDS-start)) s, $n examples per operation"
}
want schema && schema_part

# ---- load ---------------------------------------------------------------------------
load_part() {
  echo "==> load"
  local start=$SECONDS
  start_server load || { finish_part load 0 1 "server did not start"; return; }
  "$target_dir/release/tillgate-load" --base "$BASE" --conns "${TILLGATE_LOAD_CONNS:-64}" \
    --secs "${TILLGATE_LOAD_SECS:-5}" --registers 8 >"$logs/load.log" 2>&1
  local rc=$?
  grep -E '^(load (handshake|transactions|durability)|  )' "$logs/load.log" | sed 's/^/  /'
  stop_server
  local p f
  read -r p f < <(awk '/^load: [0-9]+ passed/{print $2, $4}' "$logs/load.log")
  [ $rc != 0 ] && [ "${f:-0}" = 0 ] && f=1
  finish_part load "${p:-0}" "${f:-1}" "$((SECONDS-start)) s"
}
want load && load_part

# ---- independent cross-checks -------------------------------------------------------
crosscheck_part() {
  echo "==> crosscheck"
  local start=$SECONDS
  start_server crosscheck || { finish_part crosscheck 0 1 "server did not start"; return; }
  "$PY" tests/reliability/py/crosscheck.py --base "$BASE" --admin-key "$admin_key" \
    --crosscheck "$target_dir/release/tillgate-crosscheck" \
    --jose-script tests/reliability/js/verify-jose.mjs >"$logs/crosscheck.log" 2>&1
  local rc=$?
  grep -v '^crosscheck:' "$logs/crosscheck.log" | head -60 | sed 's/^/  /'
  stop_server
  local p f
  read -r p f < <(awk '/^crosscheck: [0-9]+ passed/{print $2, $4}' "$logs/crosscheck.log")
  [ $rc != 0 ] && [ "${f:-0}" = 0 ] && f=1
  finish_part crosscheck "${p:-0}" "${f:-1}" "$((SECONDS-start)) s"
}
want crosscheck && crosscheck_part

echo "reliability parts passed: ${passed_parts[*]:-none}; skipped: ${skipped_parts[*]:-none}; failed: ${failed_parts[*]:-none} (logs in $logs)"
[ ${#failed_parts[@]} = 0 ]
