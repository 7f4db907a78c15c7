#!/bin/sh
# Runs test binaries, reads each one's closing "N passed, N failed" line and prints the total.
# Arguments: the optimized tests, then "--", then the sanitizer builds of the same tests, then
# optionally "--tier=NAME" followed by tests to run again with MCTUNE_TIER=NAME (the ISA tier
# forced down, so code that silently needs a wider ISA fails on any host). A tier segment is
# skipped, with a note, when NAME is not below this host's tier ($MCTUNE cpu --tier NAME).
# A binary that crashes or prints no summary counts as one failure. A test that could not run
# here (e.g. no Slurm) ends with "N passed, N failed, N skipped" and says why on a line starting
# "SKIP"; skipped checks are listed before the total and never counted as passed.
pass=0; fail=0; skip=0; skipped=""; mode=opt; tier=""
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
for t in "$@"; do
    if [ "$t" = "--" ]; then mode=san; continue; fi
    case "$t" in
    --tier=*)
        tier=${t#--tier=}; mode=tier
        if ${MCTUNE:-build/mctune} cpu --tier "$tier" 2>/dev/null | grep -q "the host supports"; then
            echo "--   tests again with MCTUNE_TIER=$tier (below this host's tier)"
        else
            echo "--   skipped: the tests with MCTUNE_TIER=$tier (this host's tier is not above it;" \
                 "the plain run already covers it)"
            mode=skip
        fi
        continue ;;
    esac
    [ $mode = skip ] && continue
    name="$(basename "$t")"; [ $mode = san ] && name="$name[asan+ubsan]"
    [ $mode = tier ] && name="$name[tier=$tier]"
    out=$(mktemp)
    start=$(date +%s)
    if [ $mode = san ]; then MCTUNE_SANITIZED=1 "$t" >"$out" 2>&1
    elif [ $mode = tier ]; then MCTUNE_TIER=$tier "$t" >"$out" 2>&1
    else "$t" >"$out" 2>&1; fi
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
