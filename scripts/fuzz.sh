#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 10 s each), seeded from the
# shared test vectors. Long run: scripts/fuzz.sh 3600
# A crash fails the script; the input is left in fuzz/artifacts/<target>/ — add it to
# the matching vector file or unit test as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
# The plain nightly (a dated one, such as the wasm build's, is not what `+nightly` names).
rustup toolchain list | grep -Eq '^nightly-[a-z]' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2

seed() { # target, then one seed per line on stdin
  local dir="fuzz/corpus/$1"; mkdir -p "$dir"
  local i=0
  while IFS= read -r line; do printf '%s' "$line" > "$dir/seed-$i"; i=$((i+1)); done
}
python3 - <<'PY' > /tmp/tillgate-fuzz-seeds.txt
import json
v = lambda f: json.load(open(f"tests/vectors/{f}"))
out = []
out += [("url_token", c["path"]) for c in v("url_token.json")["cases"]]
out += [("api_key", c["key"]) for c in v("api_key.json")["cases"] if "\n" not in c["key"] and "\t" not in c["key"]]
out += [("descriptor", c["jws"]) for c in v("descriptor.json")["cases"]]
out += [("dynamic_key", c["key"]) for c in v("dynamic_key.json")["verify"]]
out += [("activation_request", json.dumps(c["request"])) for c in v("activation.json")["cases"]]
out += [("activation_request", json.dumps(c["transaction"])) for c in v("transaction.json")["cases"]]
out += [("receipt_chain", r) for c in v("receipt.json")["cases"] for r in c["receipts"]]
# Whole chains with the witness as the last line (receipts are one line each).
import os
os.makedirs("fuzz/corpus/receipt_chain", exist_ok=True)
for i, c in enumerate(v("receipt.json")["witnessed"]):
    with open(f"fuzz/corpus/receipt_chain/witnessed-{i}", "w") as f:
        f.write("\n".join(c["receipts"] + [c["witness"]]))
for t, s in out:
    print(t + "\t" + s.replace("\n", " "))
PY
for t in url_token api_key descriptor dynamic_key activation_request receipt_chain; do
  grep -P "^$t\t" /tmp/tillgate-fuzz-seeds.txt | cut -f2- | seed "$t"
done

cd fuzz
cargo +nightly fuzz build -O 2>&1 | tail -1
failed=0; passed=0
for t in url_token api_key descriptor dynamic_key activation_request receipt_chain; do
  if cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -max_len=4096 >"/tmp/tillgate-fuzz-$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -Eo 'Done [0-9]+ runs' "/tmp/tillgate-fuzz-$t.log" | tail -1 || true))"
    passed=$((passed+1))
  else
    echo "fuzz $t: FAILED (see /tmp/tillgate-fuzz-$t.log and fuzz/artifacts/$t/)"; tail -30 "/tmp/tillgate-fuzz-$t.log"
    failed=$((failed+1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
