# Shell helpers shared by bench/run_benchmarks.sh and bench/run_ds_benchmarks.sh (sourced, not run).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

run_one() {  # run_one FILE CMD... : stdout to FILE, or a note on failure
  local file=$1
  shift
  if ! "$@" >"$file.tmp" 2>"$file.err"; then
    log "failed: $* ($(tail -1 "$file.err"))"
    rm -f "$file.tmp"
    return 0
  fi
  mv "$file.tmp" "$file"
}
