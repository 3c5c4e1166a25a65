#!/usr/bin/env bash
# Checks the systemd units and the environment file example in deploy/:
#   1. `systemd-analyze verify` accepts the three units (skipped, with a SKIP line, where
#      systemd-analyze is missing);
#   2. the units' own command lines run for real, without systemd: the env file is made
#      from tillgate.env.example with the secrets its comments say how to generate, the
#      server starts with the unit's ExecStart and Environment=, the admin key works, a
#      register is activated and sells, the backup unit's ExecStart writes a checked
#      backup and audits its receipt chains (the second run against the first backup),
#      its ExecStartPost deletes only backups older than the retention, and
#      SIGTERM stops the server with exit 0 within the unit's TimeoutStopSec, and the
#      restore command of deploy/README.md puts that backup back.
# Prints `deploy: N passed, N failed`. Needs the release build of tillgate-server (built
# here if missing), python3 (a free port, JSON), curl, openssl and basenc.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="${TILLGATE_SERVER_BIN:-$root/target/release/tillgate-server}"
[ -x "$bin" ] || (cd "$root" && cargo build --release -q -p tillgate-server) || exit 1
passed=0; failed=0
ok() { echo "  ok    $*"; passed=$((passed+1)); }
# A skipped check: said in the suite's log and listed with every test's skips
# ($TILLGATE_SKIP_LOG, set by scripts/test.sh), so the summary shows it.
skip() {
  echo "SKIP $*"
  if [ -n "${TILLGATE_SKIP_LOG:-}" ]; then echo "SKIP deploy/check.sh: $*" >>"$TILLGATE_SKIP_LOG"; fi
}
bad() { echo "  FAIL  $*"; failed=$((failed+1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

tmp=$(mktemp -d /tmp/tillgate-deploy-XXXXXX)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
units=(tillgate-server.service tillgate-backup.service tillgate-backup.timer)

# The unit files with the install paths moved into $tmp.
mkdir -p "$tmp/units" "$tmp/lib" "$tmp/backups"
for u in "${units[@]}"; do
  sed -e "s|/usr/local/bin/tillgate-server|$bin|g" -e "s|/var/lib/tillgate|$tmp/lib|g" \
      -e "s|/var/backups/tillgate|$tmp/backups|g" -e "s|/etc/tillgate/tillgate.env|$tmp/tillgate.env|g" \
      "$here/systemd/$u" > "$tmp/units/$u"
done

# ---- 1. systemd-analyze verify ---------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  (cd "$tmp/units" && systemd-analyze verify "${units[@]/#/./}") >"$tmp/verify.log" 2>&1
  verify_rc=$?
  # It must succeed, and say nothing about our files (the host's other units may warn).
  if [ "$verify_rc" != 0 ] || grep -E "^(\./)?tillgate|$tmp/units" "$tmp/verify.log" >/dev/null; then
    cat "$tmp/verify.log"; bad "systemd-analyze verify"
  else
    ok "systemd-analyze verify: ${units[*]}"
  fi
else
  skip "systemd-analyze verify: systemd-analyze is not installed"
fi

# ---- 2. the command lines, run for real ---------------------------------------------------
# A unit's KEY=VALUE settings and command lines (systemd's `%%` is a literal `%`).
unit_env() { sed -n 's/^Environment=//p' "$tmp/units/$1"; }
unit_cmd() { sed -n "s/^$2=//p" "$tmp/units/$1" | sed 's/%%/%/g'; }

# The env file: the example with its placeholders replaced by the recipes in its comments.
admin_recipe=$(sed -n 's/^#   \(tr -dc .*\)$/\1/p' "$here/tillgate.env.example")
kek_recipe=$(sed -n 's/^#   \(openssl rand .*\)$/\1/p' "$here/tillgate.env.example")
admin_key=$(bash -c "$admin_recipe" | tr -d '\n')
kek=$(bash -c "$kek_recipe" | tr -d '\n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^TILLGATE_ADMIN_KEY=.*|TILLGATE_ADMIN_KEY=$admin_key|" \
    -e "s|^TILLGATE_KEY_ENCRYPTION_KEY=.*|TILLGATE_KEY_ENCRYPTION_KEY=$kek|" \
    -e "s|^TILLGATE_BIND=.*|TILLGATE_BIND=127.0.0.1:$port|" \
    "$here/tillgate.env.example" > "$tmp/tillgate.env"
check "the admin key recipe gives 40 characters" test "${#admin_key}" = 40

# Runs a unit's command the way systemd would: Environment=, then EnvironmentFile= (whose
# settings win), then the command line itself as the process (so that signals reach
# it, not a shell). It
# replaces the calling shell: call it in a subshell, `(run_unit ...)` or `run_unit ... &`.
run_unit() { # unit key
  local unit=$1 key=$2
  exec env -i PATH="$PATH" bash -c '
    while IFS= read -r kv; do [ -n "$kv" ] && export "$kv"; done <<<"$1"; shift
    set -a; . "$1"; shift
    set +a; eval "exec $1"' _ "$(unit_env "$unit")" "$tmp/tillgate.env" "$(unit_cmd "$unit" "$key")"
}

run_unit tillgate-server.service ExecStart >"$tmp/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
up=0
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && { up=1; break; }
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
check "the server starts with the unit's ExecStart and settings" test "$up" = 1
if [ "$up" != 1 ]; then tail -20 "$tmp/server.log"; fi
check "the KEK came from the environment (no key file written)" test ! -e "$tmp/lib/key-encryption.key"
check "the database is in the state directory, mode 0600" \
  test "$(stat -c %a "$tmp/lib/tillgate.db" 2>/dev/null)" = 600
check "the admin key was not generated (nothing printed)" bash -c "! grep -q 'generated admin key' '$tmp/server.log'"
check "the logs are JSON lines" python3 -c '
import json,sys
lines=[l for l in open(sys.argv[1]) if l.strip()]
assert lines and all(json.loads(l) for l in lines)' "$tmp/server.log"

# A register: activate, approve with the admin key from the env file, sell once.
today=$(date -u +%Y-%m-%dT00:00:00Z)
later=$(date -u -d '+30 days' +%Y-%m-%dT00:00:00Z)
act=$(curl -fsS -H 'content-type: application/json' "$base/activations-advanced" -d "{
  \"cashRegisterName\": \"Kassa 1\", \"deviceId\": \"deploy-1\", \"validFrom\": \"$today\",
  \"validTo\": \"$later\", \"corporateId\": \"556036-0793\",
  \"applicationPackage\": \"com.example.pos\", \"extras\": {}}")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["activationId"])' "$act" 2>/dev/null)
key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apiKey"])' "$act" 2>/dev/null)
check "the admin key from the env file approves" \
  curl -fsS -o /dev/null -X POST -H "authorization: Bearer $admin_key" \
    -H 'content-type: application/json' -d '{}' "$base/admin/activations/$id/approve"
check "the register sells" curl -fsS -o /dev/null -H "authorization: Bearer $key" \
  -H 'idempotency-key: deploy-sale-1' -H 'content-type: application/json' \
  -d '{"type":"sale","currency":"SEK","total":100,"items":[{"name":"Kaffe","quantity":1,"amount":100}]}' \
  "$base/transactions"

# The backup unit, while the server runs: a first backup, with no older one to compare.
(run_unit tillgate-backup.service ExecStart) >"$tmp/backup1.out" 2>&1
check "the backup unit's ExecStart writes a checked backup" python3 -c '
import json,sys
s=[json.loads(l) for l in open(sys.argv[1]).read().strip().splitlines()][-2]
assert s["transactions"]==1 and s["activations"]==1, s' "$tmp/backup1.out"
check "and audits its receipt chains: intact" python3 -c '
import json,sys
s=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert s=={"summary":{"registers":1,"transactions":1,"broken":0,"trustedKeys":"database","previous":False}}, s' "$tmp/backup1.out"
sleep 1 # the next backup's name (UTC seconds) must differ
# A second one, with an old backup to be deleted and a recent one kept: its chains must
# continue the first's.
touch -d '30 days ago' "$tmp/backups/tillgate-20200101T000000Z.db"
touch -d '13 days ago' "$tmp/backups/tillgate-20200102T000000Z.db"
touch -d '2 days ago' "$tmp/backups/tillgate-20200103T000000Z.db.partial-123"
touch -d '1 hour ago' "$tmp/backups/tillgate-20200104T000000Z.db.partial-124"
(run_unit tillgate-backup.service ExecStart) >"$tmp/backup.out" 2>&1
check "the next backup's chains continue the previous backup's" python3 -c '
import json,sys
s=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert s=={"summary":{"registers":1,"transactions":1,"broken":0,"trustedKeys":"database","previous":True}}, s' "$tmp/backup.out"
(run_unit tillgate-backup.service ExecStartPost) >>"$tmp/backup.out" 2>&1
names=$(cd "$tmp/backups" && ls | sort | tr '\n' ' ')
check "ExecStartPost deletes only backups past the retention and old partial copies ($names)" bash -c "
  [ ! -e '$tmp/backups/tillgate-20200101T000000Z.db' ] &&
  [ -e '$tmp/backups/tillgate-20200102T000000Z.db' ] &&
  [ ! -e '$tmp/backups/tillgate-20200103T000000Z.db.partial-123' ] &&
  [ -e '$tmp/backups/tillgate-20200104T000000Z.db.partial-124' ] &&
  [ \$(ls '$tmp/backups' | grep -cE '^tillgate-[0-9]{8}T[0-9]{6}Z\.db$') = 3 ]"

# SIGTERM, as systemd stops it: exit 0 within TimeoutStopSec.
stop_secs=$(sed -n 's/^TimeoutStopSec=//p' "$tmp/units/tillgate-server.service")
kill -TERM "$server_pid"
status=timeout
for _ in $(seq 1 $((stop_secs * 10))); do
  if ! kill -0 "$server_pid" 2>/dev/null; then wait "$server_pid"; status=$?; server_pid=""; break; fi
  sleep 0.1
done
check "SIGTERM stops the server with exit 0 within ${stop_secs}s" test "$status" = 0
check "it finished what it held and said so" grep -q '"message":"stopped"' "$tmp/server.log"
check "no secret in the server's output" bash -c "! grep -qF -e '$admin_key' -e '$kek' -e '$key' '$tmp/server.log'"

# The restore in deploy/README.md, with the server stopped, through tillgate-admin (its
# paths moved into $tmp; it drops to the service user with runuser, so it runs as root
# only, here as the user running this check).
latest=$(ls "$tmp/backups" | grep -E '^tillgate-2[0-9]{7}T[0-9]{6}Z\.db$' | sort | tail -1)
sed -e "s|^bin=.*|bin=$bin|" -e "s|^data_dir=.*|data_dir=$tmp/lib|" \
    -e "s|^env_file=.*|env_file=$tmp/tillgate.env|" -e "s|^user=.*|user=$(id -un)|" \
    "$here/tillgate-admin" > "$tmp/tillgate-admin"
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
  env -i PATH="$PATH" sh "$tmp/tillgate-admin" restore "$tmp/backups/$latest" \
    >"$tmp/restore.out" 2>&1
  check "tillgate-admin restore, the server stopped, as deploy/README.md says" python3 -c '
import json,sys
s=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert s["transactions"]==1 and s["previous"], s' "$tmp/restore.out"
  check "tillgate-admin lists the registrations with the service's settings" bash -c "
    env -i PATH='$PATH' sh '$tmp/tillgate-admin' list | grep -q '\"status\":\"approved\"'"
else
  skip "tillgate-admin: needs root (runuser)"
  env -i PATH="$PATH" TILLGATE_DATA_DIR="$tmp/lib" "$bin" admin restore "$tmp/backups/$latest" \
    >"$tmp/restore.out" 2>&1
  check "admin restore, the server stopped, as deploy/README.md says" python3 -c '
import json,sys
s=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert s["transactions"]==1 and s["previous"], s' "$tmp/restore.out"
fi
check "an admin command given another data directory creates nothing there" bash -c "
  ! env -i PATH='$PATH' TILLGATE_DATA_DIR='$tmp/elsewhere' '$bin' admin list 2>'$tmp/elsewhere.err' &&
  grep -q 'no database at' '$tmp/elsewhere.err' && [ ! -e '$tmp/elsewhere' ]"

# The example env file as shipped: its admin key placeholder stops the start.
sed -e "s|^TILLGATE_KEY_ENCRYPTION_KEY=.*|TILLGATE_KEY_ENCRYPTION_KEY=$kek|" \
    -e "s|^TILLGATE_BIND=.*|TILLGATE_BIND=127.0.0.1:0|" \
    "$here/tillgate.env.example" > "$tmp/placeholder.env"
check "the example's admin key placeholder is refused at start" bash -c "
  set -a; . '$tmp/placeholder.env'; set +a
  ! TILLGATE_DATA_DIR='$tmp/placeholder' timeout 10 '$bin' serve >'$tmp/placeholder.log' 2>&1 &&
  grep -q 'TILLGATE_ADMIN_KEY is not a valid key' '$tmp/placeholder.log'"

echo "deploy: $passed passed, $failed failed"
[ "$failed" = 0 ]
