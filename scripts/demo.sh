#!/bin/sh
# make demo: the main job in one command. Installs missing dependencies, builds mctune, tunes a
# default set of Llama-3-8B layers on this CPU with the built-in guide into a database under the
# build folder (at 1 thread and all cores, each matmul for a prepacked B and for a B as given, the
# kernels the cblas drop-in runs), generates the kernel library, builds the decoder block (models/llama_block.c)
# against it, checks it against OpenBLAS and prints, per layer and M: untuned, the baseline
# libraries (mctune measure --baseline: OpenBLAS with its own core, OpenBLAS with the best core it
# has for this CPU forced when that differs, oneDNN when installed; same data, same threads) and
# tuned GFLOP/s, and the tuned kernel against the best of them. A second run finds every
# workload in the database and searches nothing.
#
# Settings (environment or make variables):
#   BUDGET=8        samples per workload (the untuned schedule included)
#   DEMO_M=1,4,16,128,512 token counts tuned per layer (decode 1-16, prefill 128 and 512)
#   THREADS=1,N     kernel thread counts tuned, comma-separated (default: 1 and all cores of
#                   this machine); the library holds each and runs the one of a call's budget
#   BUILD=build     build folder; the demo's files go to $BUILD/demo (database: $BUILD/demo/db)
#   DEPS=1          run scripts/install-deps.sh first (0: skip)
#   WEIGHTS=i8      low-precision weight formats tuned too, a list (bf16, i8, q4gG, e.g.
#                   WEIGHTS=i8,q4g32): the matmul layers are tuned in f32 and in each (the
#                   model file's "w"), the library gets their kernels, the block runs with each
#                   (its error against the f32-weight block reported), and a table shows each
#                   format's tuned kernel against the f32 one. Default: f32 only
set -eu

BUILD=${BUILD:-build}
BUDGET=${BUDGET:-8}
DEMO_M=${DEMO_M:-1,4,16,128,512}
NCPU=$(nproc 2>/dev/null || echo 1)
THREADS=${THREADS:-$( [ "$NCPU" -gt 1 ] && echo "1,$NCPU" || echo 1 )}
DEPS=${DEPS:-1}
WEIGHTS=${WEIGHTS:-}
OUT=$BUILD/demo
DB=$OUT/db
NAME=mctdemo
MCTUNE=$BUILD/mctune
MAKE=${MAKE:-make}

case $BUDGET in ''|*[!0-9]*) echo "demo: BUDGET='$BUDGET' is not a number of samples (e.g. BUDGET=8)" >&2; exit 2;; esac
case $THREADS in ''|*[!0-9,]*) echo "demo: THREADS='$THREADS' is not a comma-separated list of thread counts (e.g. THREADS=1,2)" >&2; exit 2;; esac
case $WEIGHTS in *[!a-z0-9,]*) echo "demo: WEIGHTS='$WEIGHTS' is not a comma-separated list of weight formats (e.g. WEIGHTS=i8,q4g32)" >&2; exit 2;; esac
case $DEMO_M in ''|*[!0-9,]*) echo "demo: DEMO_M='$DEMO_M' is not a comma-separated list of token counts (e.g. DEMO_M=1,16,128)" >&2; exit 2;; esac

t0=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" $(( $(date +%s) - t0 )); }

step "dependencies"
if [ "$DEPS" = 1 ]; then sh scripts/install-deps.sh; else echo "skipped (DEPS=0)"; fi

step "build"
$MAKE -s DEPS=0 BUILD="$BUILD" "$MCTUNE" "$BUILD/llama_block"
mkdir -p "$OUT"
"$MCTUNE" cpu | head -3

# The layers of one Llama-3-8B decoder block (o_proj has q_proj's shape, v_proj k_proj's, up_proj
# gate_proj's) and its attention over 512 positions, at the token counts DEMO_M.
# WEIGHTS: the matmul layers in f32 and each format asked for (the file's "w"; bmm stays f32)
WLIST=f32
for f in $(echo "$WEIGHTS" | tr ',' ' '); do
    [ "$f" = f32 ] || WLIST=$WLIST,$f
done
nf=$(echo "$WLIST" | tr ',' '\n' | grep -c .)
MODEL=$OUT/llama-3-8b-demo.json
cat > "$MODEL" <<EOF
{
  "name": "llama-3-8b",
  "w": "$WLIST",
  "source": "models/llama-3-8b.json: the layers of one decoder block, written by scripts/demo.sh",
  "layers": [
    {"name": "q_proj", "op": "matmul", "layout": "nt", "N": 4096, "K": 4096, "M": [$DEMO_M]},
    {"name": "k_proj", "op": "matmul", "layout": "nt", "N": 1024, "K": 4096, "M": [$DEMO_M]},
    {"name": "gate_proj", "op": "matmul", "layout": "nt", "N": 14336, "K": 4096, "M": [$DEMO_M]},
    {"name": "down_proj", "op": "matmul", "layout": "nt", "N": 4096, "K": 14336, "M": [$DEMO_M]},
    {"name": "attn_scores_s512", "op": "bmm", "layout": "nt", "B": 32, "G": 4, "N": 512, "K": 128, "M": [$DEMO_M]},
    {"name": "attn_values_s512", "op": "bmm", "layout": "nn", "B": 32, "G": 4, "N": 128, "K": 512, "M": [$DEMO_M]}
  ]
}
EOF
nw=$(( (4 * nf + 2) * $(echo "$DEMO_M" | tr ',' '\n' | grep -c .) ))

: > "$OUT/tune.out"
for T in $(echo "$THREADS" | tr ',' ' '); do
    step "tune: $nw layer shapes (matmul both for a prepacked B and for B as given), budget $BUDGET samples each (BUDGET=N to change), $T thread(s), built-in guide, db $DB"
    "$MCTUNE" tune --model "$MODEL" --budget "$BUDGET" --threads "$T" --b both --guide heuristic \
        --db "$DB" --log "$OUT/tune.jsonl" 2>&1 | tee "$OUT/tune-$T.out" | grep --line-buffered -v '^    best:' || true
    cat "$OUT/tune-$T.out" >> "$OUT/tune.out"
    if ! grep -q '^done: ' "$OUT/tune-$T.out"; then
        echo "demo: mctune tune failed (its output is in $OUT/tune-$T.out)" >&2
        exit 1
    fi
    if grep -q '^done: 0 tuned' "$OUT/tune-$T.out"; then
        echo "(everything was already in the database: nothing searched)"
    fi
done

step "report: sample efficiency of the searches in $OUT/tune.jsonl"
"$MCTUNE" report "$OUT/tune.jsonl" --out "$OUT/report" || echo "(report skipped)"
first=$(sed -n 's/.*"workload":"\([^"]*\)".*/\1/p' "$OUT/tune.jsonl" | head -1)
[ -n "$first" ] && "$MCTUNE" tree "$OUT/tune.jsonl" --workload "$first" --out "$OUT/tree.dot" || true

step "gen: $OUT/gen/$NAME.h, $NAME.c"
"$MCTUNE" gen --db "$DB" --out "$OUT/gen" --name "$NAME" --cpus host --model "$MODEL"

step "the decoder block against the generated library"
$MAKE -s DEPS=0 BUILD="$BUILD" block-gen BLOCK_GEN_DIR="$OUT/gen" BLOCK_GEN_NAME="$NAME"
"$BUILD/llama_block-gen" --check --m 1,16 --weights "$WLIST" | tee "$OUT/block-check.out"
blas_core=$(sed -n 's/^backend openblas *//p' "$OUT/block-check.out" | head -1)

step "layers: untuned, the libraries and tuned GFLOP/s (mctune measure --baseline, B from memory, threads $THREADS)"
echo "block check: OpenBLAS $blas_core"
hdr="%-17s %4s %3s %8s %9s %9s %8s %-16s %8s %9s"
printf "$hdr\n" layer M thr untuned OB-own OB-forced oneDNN "best of" tuned tuned/best
gf() { sed -n "$1"'.* \([0-9.]*\) GFLOP\/s.*/\1/p' | head -1; }
: > "$OUT/table.txt"
for T in $(echo "$THREADS" | tr ',' ' '); do
trials=$OUT/trials-$T.csv
"$MCTUNE" db list --trials --cpu host --threads "$T" --format csv --db "$DB" > "$trials"
sed -n 's/.*"name": "\([^"]*\)", "op": "\([a-z]*\)", "layout": "\([a-z]*\)", \(.*\)"M".*/\1 \2 \3 \4/p' "$MODEL" |
while read -r lname op layout rest; do
    N=$(echo "$rest" | sed -n 's/.*"N": \([0-9]*\).*/\1/p')
    K=$(echo "$rest" | sed -n 's/.*"K": \([0-9]*\).*/\1/p')
    B=$(echo "$rest" | sed -n 's/.*"B": \([0-9]*\).*/\1/p')
    G=$(echo "$rest" | sed -n 's/.*"G": \([0-9]*\).*/\1/p')
    for M in $(echo "$DEMO_M" | tr ',' ' '); do
        if [ "$op" = bmm ]; then wl="bmm f32 $layout B=$B G=$G M=$M N=$N K=$K epi=none"
        else wl="matmul f32 $layout M=$M N=$N K=$K epi=none"; fi
        sched=$("$MCTUNE" db get "$wl" --cpu host --threads "$T" --format json --db "$DB" \
                2>/dev/null | sed -n 's/.*"schedule":"\([^"]*\)".*/\1/p')
        untuned=$(grep -F "\"$wl\"," "$trials" | grep ',""$' | head -1 | awk -F'","' '{printf "%.2f", $6}')
        m=$("$MCTUNE" measure "$wl" --schedule "$sched" --threads "$T" --baseline 2>&1 || true)
        echo "$m" | grep '^baseline ' | sed 's/ [0-9.]* [mu]*s median with.*//' > "$OUT/baselines.txt"
        tuned=$(echo "$m" | sed -n 's/^speed *\([0-9.]*\) GFLOP.*/\1/p')
        ob=$(echo "$m" | grep '^baseline   OpenBLAS .*(its own choice)' | gf 's/^baseline')
        obf=$(echo "$m" | grep '^baseline   OpenBLAS .*(forced, OPENBLAS_CORETYPE)' | gf 's/^baseline')
        dn=$(echo "$m" | grep '^baseline   oneDNN [0-9]' | gf 's/^baseline')
        bestl=$(echo "$m" | grep '^baseline .*(best)$' | sed -n 's/^baseline   OpenBLAS [0-9.]* core \([A-Za-z0-9_]*\).*/OpenBLAS \1/p; s/^baseline   oneDNN .*/oneDNN/p')
        best=$(echo "$m" | grep '^baseline .*(best)$' | gf 's/^baseline')
        r=$(awk -v a="${tuned:-0}" -v b="${best:-0}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
        printf "$hdr\n" "$lname" "$M" "$T" "${untuned:--}" "${ob:--}" "${obf:--}" "${dn:--}" \
            "${bestl:--}" "${tuned:--}" "$r"
    done
done | tee -a "$OUT/table.txt"
done
echo "(untuned: the tuner's sample 1 in the database; tuned and the libraries: measured now on the"
echo " same data with the row's thread count (thr); M=1: OpenBLAS is the faster of sgemm and sgemv, oneDNN's"
echo " dnnl_sgemm runs its gemv; o/v/up_proj share q/k/gate_proj's shapes; tuned/best: against the"
echo " fastest library of the row). The libraries, as the last measurement named them:"
sed 's/^baseline   /  /; s/ (best)$//' "$OUT/baselines.txt"

if [ "$WLIST" != f32 ]; then
    step "weight formats: each format's tuned kernel against the f32 tuned kernel (the database's best records)"
    whdr="%-10s %4s %3s %-7s %10s %10s %10s"
    printf "$whdr\n" layer M thr weights "f32 GF/s" "GF/s" "vs f32"
    rec_gf() { "$MCTUNE" db get "$1" --cpu host --threads "$2" --format json --db "$DB" 2>/dev/null |
               sed -n 's/.*"gflops":\([0-9.e+-]*\).*/\1/p' | head -1 |
               awk '{ printf "%.2f", $1 }'; }
    for T in $(echo "$THREADS" | tr ',' ' '); do
    sed -n 's/.*"name": "\([^"]*\)", "op": "matmul", "layout": "\([a-z]*\)", "N": \([0-9]*\), "K": \([0-9]*\).*/\1 \2 \3 \4/p' "$MODEL" |
    while read -r lname layout N K; do
        for M in $(echo "$DEMO_M" | tr ',' ' '); do
            base="matmul f32 $layout M=$M N=$N K=$K epi=none"
            g32=$(rec_gf "$base" "$T")
            for f in $(echo "$WLIST" | tr ',' ' '); do
                [ "$f" = f32 ] && continue
                g=$(rec_gf "$base w=$f" "$T")
                r=$(awk -v a="${g:-0}" -v b="${g32:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
                printf "$whdr\n" "$lname" "$M" "$T" "$f" "${g32:--}" "${g:--}" "$r"
            done
        done
    done
    done | tee "$OUT/table-weights.txt"
    echo "(GF/s: the f32 FLOPs of the shape over the tuned kernel's median time, from the database;"
    echo " the block's error per format: 'quant' lines of the block check above; side-by-side"
    echo " tokens/s: make bench-block WEIGHTS=$WLIST)"
fi

step "done"
echo "database $DB (mctune db list --db $DB), library $OUT/gen, report $OUT/report/report.md,"
echo "search tree $OUT/tree.svg, block benchmark: make bench-block"
