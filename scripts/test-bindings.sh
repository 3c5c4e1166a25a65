#!/usr/bin/env bash
# Runs the binding tests of every language and prints one summary; exits 1 if any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
declare -A result
for lang in kotlin python swift wasm; do
  printf '\n######## %s ########\n' "$lang"
  start=$SECONDS
  if "$here/test-$lang.sh"; then result[$lang]="ok"; else result[$lang]="FAILED"; fi
  result[$lang]+=" ($((SECONDS - start)) s)"
done
printf '\n######## summary ########\n'
status=0
for lang in kotlin python swift wasm; do
  printf '%-8s %s\n' "$lang" "${result[$lang]}"
  [[ ${result[$lang]} == ok* ]] || status=1
done
exit $status
