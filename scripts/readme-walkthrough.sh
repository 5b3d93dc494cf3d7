#!/usr/bin/env bash
# Follows README's deployment steps ("Install (admins)", "Setting up the audit room") in the production layout:
# Synapse from its own virtualenv with `pip install ./synapse-module`, a config from Synapse's --generate-config,
# the registration from `-r --alias`, `create-room --alias`, `validate-config -c -f`, then the appservice with
# `node lib/main.js -c … -f …`; one change must reach the room and `verify` must find the trail intact.
# What differs from a real deployment, to stay fast and offline: Synapse's own packages come from the project's
# .venv (a .pth file: no second download of matrix-synapse; pip only fetches setuptools to build the module),
# SQLite, loopback ports, and users registered with the shared secret.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NODE=${NODE:-$ROOT/node_modules/.bin/node}
MAIN="$NODE $ROOT/lib/main.js"
WORK=$(mktemp -d /tmp/readme-walkthrough.XXXXXX)
SYN_PID=""; AS_PID=""
cleanup() {
    [ -n "$AS_PID" ] && kill "$AS_PID" 2>/dev/null || true
    [ -n "$SYN_PID" ] && kill "$SYN_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP:-}" = "" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HS_PORT=$(free_port); AS_PORT=$(free_port)
SERVER=walkthrough.test
cd "$WORK"
step() { echo "== $*"; }

step "Synapse's environment: venv + pip install ./synapse-module"
python3 -m venv synapse-env
"$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    > "$(synapse-env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/project-venv.pth"
synapse-env/bin/pip install -q "$ROOT/synapse-module"
PY=$WORK/synapse-env/bin/python

step "Install 1: node lib/main.js -r -u … -f registration.yaml --alias '#account-data-audit:$SERVER'"
$MAIN -r -u "http://127.0.0.1:$AS_PORT" -f registration.yaml --alias "#account-data-audit:$SERVER"

step "Install 2: homeserver.yaml with app_service_config_files and the module"
$PY -m synapse.app.homeserver --server-name "$SERVER" --config-path homeserver.yaml --generate-config \
    --report-stats=no > /dev/null
{ echo; cat <<YAML
app_service_config_files: [$WORK/registration.yaml]
modules:
  - module: synapse_account_data_audit.AccountDataAuditModule
    config:
      appservice_url: http://127.0.0.1:$AS_PORT
      registration_file: $WORK/registration.yaml
YAML
} >> homeserver.yaml  # the generated file ends without a newline
# The generated listener is 8008 on all interfaces: a free loopback port instead.
sed -i "s/port: 8008/port: $HS_PORT/; s/bind_addresses: \['::1', '127.0.0.1'\]/bind_addresses: ['127.0.0.1']/" homeserver.yaml
$PY -m synapse.app.homeserver -c homeserver.yaml > synapse.out 2>&1 &
SYN_PID=$!
HS=http://127.0.0.1:$HS_PORT
for _ in $(seq 120); do curl -sf "$HS/_matrix/client/versions" > /dev/null && break; sleep 0.5; done
curl -sf "$HS/_matrix/client/versions" > /dev/null || { tail -30 synapse.out homeserver.log 2>/dev/null; exit 1; }
SECRET=$(sed -n 's/^registration_shared_secret: "\?\([^"]*\)"\?$/\1/p' homeserver.yaml)
$PY -m synapse._scripts.register_new_matrix_user -u you -p you-password -a -k "$SECRET" "$HS" > /dev/null
$PY -m synapse._scripts.register_new_matrix_user -u alice -p alice-password --no-admin -k "$SECRET" "$HS" > /dev/null
login() { curl -sf -X POST "$HS/_matrix/client/v3/login" -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"$1\"},\"password\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
YOU=$(login you you-password); ALICE=$(login alice alice-password)

step "Install 3: config.yaml from config.sample.yaml, create-room, validate-config, start"
sed -e "s/example\.org/$SERVER/g" -e "s#http://localhost:8008#$HS#" -e "s/port: 9993/port: $AS_PORT/" \
    "$ROOT/config.sample.yaml" > config.yaml
ROOM=$($MAIN create-room -c config.yaml -f registration.yaml --invite "@you:$SERVER" --alias "#account-data-audit:$SERVER" 2> create-room.err)
cat create-room.err
if grep -qiE "error|errcode|M_USER_IN_USE" create-room.err; then echo "create-room printed an error"; exit 1; fi
sed -i "s/^audit_room: .*/audit_room: '$ROOM'/" config.yaml
$MAIN validate-config -c config.yaml -f registration.yaml --strict
$MAIN -c config.yaml -f registration.yaml > appservice.out 2>&1 &
AS_PID=$!
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$AS_PORT/health" > /dev/null && break; sleep 0.5; done

step "A change reaches the room; verify finds the trail intact"
curl -sf -X POST -H "Authorization: Bearer $YOU" "$HS/_matrix/client/v3/join/$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "$ROOM")" -d '{}' > /dev/null
curl -sf -X PUT -H "Authorization: Bearer $ALICE" -d '{"theme": "dark"}' \
    "$HS/_matrix/client/v3/user/@alice:$SERVER/account_data/im.vector.setting.theme" > /dev/null
WANT="@alice:$SERVER has changed their account data for type im.vector.setting.theme to: {\"theme\": \"dark\"}"
ROOM_Q=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "$ROOM")
for _ in $(seq 60); do
    curl -sf -H "Authorization: Bearer $YOU" "$HS/_matrix/client/v3/rooms/$ROOM_Q/messages?dir=b&limit=50" | grep -qF "$(printf '%s' "$WANT" | sed 's/"/\\"/g')" && break
    sleep 0.5
done
curl -sf -H "Authorization: Bearer $YOU" "$HS/_matrix/client/v3/rooms/$ROOM_Q/messages?dir=b&limit=50" | grep -qF "$(printf '%s' "$WANT" | sed 's/"/\\"/g')" \
    || { echo "the change did not reach the room"; tail -20 appservice.out; exit 1; }
$MAIN verify -c config.yaml -f registration.yaml
echo "README walkthrough: OK"
