#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after the other, at
# nice 10, on the stable toolchain (RUSTC_BOOTSTRAP=1 for the sanitizer flags).
# New inputs go to fuzz/work/<target> (ignored by git); the seeds in
# fuzz/corpus/<target> are only read. Logs: fuzz/logs/<target>.log.
# Usage: fuzz/run_all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(verify config manifest jwt creds age)
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  start=$(date +%s)
  # verify is slow per input (a whole store's signatures, sometimes its decryption):
  # without AddressSanitizer (the crate has no unsafe code on that path) it runs 4x faster.
  flags=() extra=()
  if [ "$t" = verify ]; then flags=(-s none); extra=(-max_len=2048 -len_control=0); fi
  # Field names and telling values, so mutations reach validation rather than syntax errors.
  if [ "$t" = config ]; then extra=(-dict=config.dict); fi
  # The creds seeds are marked TEST-ONLY fixtures kept outside the corpus dir.
  seeds=("corpus/$t")
  if [ "$t" = creds ]; then seeds=(../tests/fixtures/insecure/fuzz-creds); fi
  nice -n 10 cargo fuzz run "${flags[@]}" "$t" "work/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 "${extra[@]}" >"logs/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  echo "$t: exit $rc, $((end - start)) s wall, ${execs:-?} execs, $(grep -c '' "logs/$t.log") log lines" | tee -a logs/summary.txt
done
