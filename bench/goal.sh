# Sourced by the bench scripts: `goal N what value op limit` prints one verdict line for
# goal N of issue 13 (op `<=` or `>=`; value and limit plain numbers) and, when
# BENCH_SUMMARY names a file (`make bench` sets one), appends it there, so the run ends
# with every goal's figure and verdict on one screen.
goal() {
  local verdict line
  verdict=$(awk -v v="$3" -v op="$4" -v l="$5" 'BEGIN {
    if (v == "" || v + 0 != v) { print "not measured"; exit }
    print ((op == "<=" ? v + 0 <= l + 0 : v + 0 >= l + 0) ? "met" : "NOT met") }')
  line=$(printf 'goal %s  %-50s %10s  (goal %s %s)  %s' "$1" "$2" "$3" "$4" "$5" "$verdict")
  echo "$line" >&2
  if [ -n "${BENCH_SUMMARY:-}" ]; then echo "$line" >>"$BENCH_SUMMARY"; fi
  return 0
}

# A wrk latency (`890.00us`, `1.07ms`, `2.10s`) in microseconds.
wrk_us() {
  awk -v t="$1" 'BEGIN {
    if (t ~ /us$/) m = 1; else if (t ~ /ms$/) m = 1000; else if (t ~ /s$/) m = 1000000; else { print ""; exit }
    sub(/[a-z]+$/, "", t); printf "%.0f", t * m }'
}
