#!/bin/bash
#SBATCH --job-name=mctune-merge
#SBATCH --open-mode=append
# The last step of a tuning fleet: imports every target's export from the shared folder into one
# database (per key the faster best record wins; conflicts are reported), then writes one kernel
# library with a dispatch table for every CPU (`mctune gen --cpus all`). Submitted by
# fleet-slurm.sh as a job that depends on the tuning array (--dependency=afterok); runs by hand
# (or as a follow-up Kubernetes Job) too.
set -u
unset CDPATH

usage() {
    cat <<'EOF'
usage: fleet-merge.sh --targets LIST --shared DIR [options]

For each target: SHARED/exports/TARGET.done must exist (the task finished) and
SHARED/exports/TARGET.jsonl must be a whole export (one cut short is refused by the import and
the merge fails, naming it). Then
  mctune db import SHARED/exports/TARGET.jsonl --db DB     (one target after the other)
  mctune gen --db DB --cpus all --out OUT --name NAME
and a summary, also written to SHARED/merge.summary:
  target=T records=N best=B trials=X added=A replaced=R conflicts=C cpu=KEY (TIER)
  merged db=DB cpus=K best=B trials=X conflicts=C
  library out=OUT name=NAME tables=T kernels=K
  table key=KEY name=...
SHARED/merge.status holds 0 on success, else the failing step's status.

  --targets LIST   comma-separated targets, as given to the tasks
  --shared DIR     shared folder of the fleet
  --db PATH        the merged database (default SHARED/fleet.db; records already there stay,
                   and the faster record per key wins)
  --out DIR        library folder (default SHARED/lib)
  --name NAME      library name (default mctfleet)
  --threads N      records tuned for N threads (default 1)
  --mctune PATH    the mctune binary (default: mctune on PATH)
  --dry-run        print what would be done, do nothing
EOF
}

die() { echo "fleet-merge: $*" >&2; [ -n "${status_file:-}" ] && echo "${2:-1}" >"$status_file"; exit 1; }
log() { echo "fleet-merge: $*"; }

targets="" shared="" db="" out="" name=mctfleet threads=1 mctune=mctune dry=0
while [ $# -gt 0 ]; do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --targets) targets=${2-}; shift 2 ;;
    --shared) shared=${2-}; shift 2 ;;
    --db) db=${2-}; shift 2 ;;
    --out) out=${2-}; shift 2 ;;
    --name) name=${2-}; shift 2 ;;
    --threads) threads=${2-}; shift 2 ;;
    --mctune) mctune=${2-}; shift 2 ;;
    --dry-run) dry=1; shift ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$targets" ] || die "--targets LIST is required (see --help)"
[ -n "$shared" ] || die "--shared DIR is required"
db=${db:-$shared/fleet.db}
out=${out:-$shared/lib}
IFS=, read -r -a tlist <<<"$targets"
exports=$shared/exports

if [ $dry = 1 ]; then
    echo "fleet-merge: ${#tlist[@]} targets from $exports into $db, library $out/$name"
    for t in "${tlist[@]}"; do
        echo "  [ -f $exports/$t.done ] && $mctune db import $exports/$t.jsonl --db $db"
    done
    echo "  $mctune gen --db $db --cpus all --threads $threads --out $out --name $name"
    echo "  summary in $shared/merge.summary, status in $shared/merge.status"
    exit 0
fi

[ -d "$shared" ] || die "no shared folder '$shared'"
status_file=$shared/merge.status
summary=$shared/merge.summary
rm -f "$status_file" "$summary.tmp"
command -v "$mctune" >/dev/null 2>&1 || die "mctune binary '$mctune' not found (--mctune PATH)"

missing=""
for t in "${tlist[@]}"; do
    [ -f "$exports/$t.done" ] && [ -f "$exports/$t.jsonl" ] || missing="$missing $t"
done
[ -z "$missing" ] || die "targets without a finished export:$missing (their tasks failed or were cut short; run fleet-slurm.sh again with --resume)"

total_conflicts=0
for t in "${tlist[@]}"; do
    f=$exports/$t.jsonl
    if ! msg=$("$mctune" db import "$f" --db "$db" 2>&1); then
        echo "$msg" >&2
        die "import of $f refused; nothing of it was merged (export that target again: remove $exports/$t.done and run fleet-slurm.sh --resume)"
    fi
    echo "$msg" | grep '^ *conflict:' | sed "s/^ */fleet-merge: [$t] /"
    sum=$(echo "$msg" | grep '^imported ' | tail -1)
    num() { echo "$sum" | sed -n "s/.* \([0-9][0-9]*\) $1.*/\1/p"; }
    added=$(num added) replaced=$(num replaced) conflicts=$(num conflicts)
    records=$(grep -c '"type":"[a-z]*"' "$f")
    records=$((records - 2))    # the begin and end lines
    best=$(grep -c '"type":"best"' "$f")
    trials=$(grep -c '"type":"trial"' "$f")
    cpu=$(grep '"type":"cpu"' "$f" | sed -n 's/.*"key":"\([0-9a-f]*\)".*"tier":"\([^"]*\)".*/\1 (\2)/p' | tr '\n' ' ')
    line="target=$t records=$records best=$best trials=$trials added=${added:-0} replaced=${replaced:-0} conflicts=${conflicts:-0} cpu=${cpu% }"
    log "$line"
    echo "$line" >>"$summary.tmp"
    total_conflicts=$((total_conflicts + ${conflicts:-0}))
done

stats=$("$mctune" db stats --db "$db" 2>&1) || die "db stats failed: $stats"
st() { echo "$stats" | sed -n "s/^$1  *\([0-9]*\).*/\1/p"; }
line="merged db=$db cpus=$(st cpus) best=$(st best) trials=$(st trials) conflicts=$total_conflicts"
log "$line"
echo "$line" >>"$summary.tmp"

mkdir -p "$out" || die "cannot create '$out'"
if ! gmsg=$("$mctune" gen --db "$db" --cpus all --threads "$threads" --out "$out" --name "$name" 2>&1); then
    echo "$gmsg" >&2
    die "mctune gen failed"
fi
log "$gmsg"
tables=$(echo "$gmsg" | sed -n 's/.*: \([0-9]*\) CPU tables.*/\1/p')
kernels=$(echo "$gmsg" | sed -n 's/.*, \([0-9]*\) tuned kernels.*/\1/p')
line="library out=$out name=$name tables=${tables:-0} kernels=${kernels:-0}"
log "$line"
echo "$line" >>"$summary.tmp"
# the tables as the library names them (static const mct_rt_table NAME__tN = {"DESC", KEY, ...})
sed -n "s/^static const mct_rt_table ${name}__t[0-9]* = {\"\([^\"]*\)\", 0x\([0-9a-f]*\)ull.*/table key=\2 name=\1/p" \
    "$out/$name.c" | tee -a "$summary.tmp" | sed 's/^/fleet-merge: /'
mv -f "$summary.tmp" "$summary"
echo 0 >"$status_file"
log "done: ${#tlist[@]} targets merged into $db, $total_conflicts conflicts, library $out/$name.{h,c} with ${tables:-0} tables"
