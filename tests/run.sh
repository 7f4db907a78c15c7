#!/bin/sh
# Runs test binaries, reads each one's closing "N passed, N failed" line and prints the total.
# Arguments: the optimized tests, then "--", then the sanitizer builds of the same tests.
# A binary that crashes or prints no summary counts as one failure. A test that could not run
# here (e.g. no Slurm) ends with "N passed, N failed, N skipped" and says why on a line starting
# "SKIP"; skipped checks are listed before the total and never counted as passed.
pass=0; fail=0; skip=0; skipped=""; mode=opt
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
for t in "$@"; do
    if [ "$t" = "--" ]; then mode=san; continue; fi
    name="$(basename "$t")"; [ $mode = san ] && name="$name[asan+ubsan]"
    out=$(mktemp)
    start=$(date +%s)
    if [ $mode = san ]; then MCTUNE_SANITIZED=1 "$t" >"$out" 2>&1; else "$t" >"$out" 2>&1; fi
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    f=$(echo "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p')
    s=$(echo "$line" | sed -n 's/^[0-9]* passed, [0-9]* failed, \([0-9]*\) skipped.*/\1/p')
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    [ -z "$s" ] && s=0
    if [ -z "$line" ] || [ $rc -ne 0 -a "$f" = 0 ]; then f=$((f + 1)); fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    secs=$(( $(date +%s) - start ))
    if [ "$f" != 0 ]; then
        echo "FAIL $name: $p passed, $f failed (exit $rc, ${secs}s); its output:"
        tail -40 "$out" | sed 's/^/    /'
    elif [ "$s" != 0 ]; then
        echo "skip $name: $p passed, $s skipped (${secs}s):"
        grep '^SKIP' "$out" | head -5 | sed 's/^/    /'
        skipped="$skipped $name"
    else
        echo "ok   $name: $p passed (${secs}s)"
    fi
    rm -f "$out"
done
[ "$skip" != 0 ] && echo "$skip skipped (${skipped# }): not run here, not counted as passed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
