#!/usr/bin/env bash
# CI: the package as users get it. Builds the wheel, checks what it holds, installs it into fresh
# environments in a temporary directory outside the checkout (the base install, then the
# `pytest` extra, then `all`, each with the locked versions as constraints) and uses it there:
# --version, a chaos run, the fake n8n answering a sample webhook, the README's plugin examples
# as a user's test files (pytest starts without pytest-asyncio, respx and freezegun too), and a
# load run on the embedded PostgreSQL. Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
uv="$repo/.venv/bin/uv"
py="$repo/.venv/bin/python"
work=$(mktemp -d /tmp/rh-installed-XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { printf '\n== installed package: %s\n' "$*"; }

step "build the wheel"
"$uv" build --wheel -q -o "$work/dist" .
wheel=$(ls "$work"/dist/reliability_harness-*.whl)
ls -l "$wheel"
"$py" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["harness/data/n8n/workflows/weekly-recap.json", "harness/data/catalogue/smoke.yaml",
        "harness/data/loadtests/locustfile.py", "harness/data/loadtests/thresholds.yaml",
        "harness/data/loadtests/faults/n8n-503.yaml",
        "reliability/store/migrations/postgres/0001_seed_tables.sql"]
missing = [n for n in need if n not in names]
tests = [n for n in names if n.split("/")[-1].startswith(("test_", "conftest"))]
outside = sorted({n.split("/")[0] for n in names} - {"reliability", "harness"}
                 - {n.split("/")[0] for n in names if ".dist-info/" in n})
assert not missing, f"the wheel lacks {missing}"
assert not tests, f"the wheel holds test modules: {tests}"
assert not outside, f"the wheel holds more than reliability/ and harness/: {outside}"
print(f"wheel: {len(names)} files, data present, no test module")
PY
"$uv" export -q --frozen --no-dev --all-extras --no-hashes --no-emit-project \
  -o "$work/constraints.txt"
install() {  # install VENV SPEC: a fresh venv with the wheel (and extras) at locked versions
  "$uv" venv -q -p python3.11 "$work/$1"
  VIRTUAL_ENV="$work/$1" "$uv" pip install -q -c "$work/constraints.txt" "$2"
}
cd "$work"  # from here on, nothing of the checkout is on the path

step "base install"
install base "$wheel"
echo "base install: $(VIRTUAL_ENV="$work/base" "$uv" pip list -q 2>/dev/null | tail -n +3 | wc -l) packages"
base/bin/reliability-harness --version
base/bin/python -m harness --version
base/bin/reliability-harness chaos --scenario smoke --out "$work/out/chaos"

step "fake-n8n with its defaults answers a sample webhook 200"
port=$(base/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base/bin/reliability-harness fake-n8n --port "$port" > "$work/fake-n8n.log" 2>&1 &
fake=$!
status=$(base/bin/python - "$port" <<'PY'
import sys, time, httpx
url = f"http://127.0.0.1:{sys.argv[1]}/webhook/weekly-recap"
for _ in range(150):  # up to 30 s for it to listen
    try:
        r = httpx.post(url, json={"tenant_id": "acme"},
                       headers={"X-N8N-Webhook-Key": "local-test-webhook-key"}, timeout=2)
        print(r.status_code)
        break
    except httpx.TransportError:
        time.sleep(0.2)
else:
    print("no answer")
PY
)
kill "$fake"; wait "$fake" || true
[ "$status" = 200 ] || { cat "$work/fake-n8n.log"; echo "fake-n8n answered $status" >&2; exit 1; }
echo "fake-n8n answered 200"

step "a command that needs an extra names it"
set +e
base/bin/reliability-harness serve > /dev/null 2> "$work/serve.err"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "reliability-harness\[service\]" "$work/serve.err" \
  || { cat "$work/serve.err"; echo "serve without [service]: exit $rc" >&2; exit 1; }
cat "$work/serve.err"

# The README's plugin examples, each a user's test file (pytest's defaults: strict asyncio mode).
mkdir -p "$work/user/tests"
"$py" - "$repo/README.md" "$work/user/tests" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
marks = [i for i, line in enumerate(lines) if line.strip() == "<!-- doc-test: pytest -->"]
assert len(marks) >= 3, f"expected the README's three plugin examples, found {len(marks)}"
for n, mark in enumerate(marks, 1):
    end = lines.index("```", mark + 2)
    with open(f"{sys.argv[2]}/test_readme_example_{n}.py", "w", encoding="utf-8") as out:
        out.write("\n".join(lines[mark + 2 : end]) + "\n")
print(f"{len(marks)} README examples")
PY
cat > "$work/user/tests/test_plain.py" <<'PY'
import httpx

def test_fake_stripe_signs(fake_stripe):
    event = fake_stripe.event("invoice.paid", tenant="acme")
    assert event["type"] == "invoice.paid"

def test_fake_n8n_through_respx(fake_n8n_respx):  # a sync client of the user's own
    r = httpx.get("http://fake-n8n.invalid/healthz")
    assert r.json() == {"status": "ok"}
PY

step "pytest without pytest-asyncio, respx, freezegun: plain tests pass, the others name extras"
pytest_version=$(grep -i '^pytest==' "$work/constraints.txt")
VIRTUAL_ENV="$work/base" "$uv" pip install -q "$pytest_version"
set +e
(cd "$work/user" && "$work/base/bin/python" -m pytest -q -p no:cacheprovider tests) > "$work/no-asyncio.log" 2>&1
rc=$?
set -e
cat "$work/no-asyncio.log"
[ "$rc" = 1 ] && grep -qE "(^| )1 passed" "$work/no-asyncio.log" \
  && grep -q "pip install 'reliability-harness\[pytest\]'" "$work/no-asyncio.log" \
  && grep -q "needs respx, which is not installed: pip install 'reliability-harness\[respx\]'" \
    "$work/no-asyncio.log" \
  || { echo "expected: the plain test passes, the others fail naming the extras" >&2; exit 1; }

step "the pytest extra: the README's plugin examples pass"
install with-pytest "$wheel[pytest]"
(cd "$work/user" && "$work/with-pytest/bin/python" -m pytest -q -p no:cacheprovider tests)

step "all extras: a load run on the embedded PostgreSQL"
install all "$wheel[all]"
all/bin/reliability-harness load --duration 10s --users 10 --spawn-rate 10 --out "$work/out/load"
echo "installed-package checks passed"
