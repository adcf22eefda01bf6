#!/usr/bin/env bash
# Prints a markdown table of the normalised error max|y - ref| / max|ref| of every reference case on
# every backend (npcore check), for docs/ACCURACY.md. Usage: tools/accuracy_table.sh [NPCORE] [REF_DIR]
set -euo pipefail
npcore=${1:-build/npcore}
ref=${2:-../shared/ref}
# A column is a backend, optionally with extra flags after a colon.
backends=(reference gemm onednn native "native:--no-winograd")
cases=()
for j in "$ref"/*.json "$ref"/layers/*.json "$ref"/models/*.json; do cases+=("${j%.json}"); done
declare -A err
for b in "${backends[@]}"; do
  while read -r status name kind backend rest; do
    [[ $status == PASS || $status == FAIL ]] || continue
    e=$(sed -n 's/.*= \([0-9.e+-]*\).*/\1/p' <<<"$rest")
    if [[ $status == FAIL ]]; then e="$e FAIL"; fi
    err["$name,$b"]=$e
  done < <("$npcore" check "${cases[@]}" --backend "${b%%:*}" $([[ $b == *:* ]] && echo "${b#*:}") || true)
done
printf '| case |'; for b in "${backends[@]}"; do printf ' %s |' "${b/:/ }"; done; printf '\n|---|'
for b in "${backends[@]}"; do printf -- '---|'; done; printf '\n'
for c in "${cases[@]}"; do
  n=${c##*/}
  printf '| %s |' "$n"; for b in "${backends[@]}"; do printf ' %s |' "${err[$n,$b]:-n/a}"; done; printf '\n'
done
