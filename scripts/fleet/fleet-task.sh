#!/bin/bash
#SBATCH --job-name=mctune-tune
#SBATCH --requeue
#SBATCH --open-mode=append
# One task of a tuning fleet: tunes a model for one target into a database on node-local
# storage and keeps a JSON Lines export of it in the shared folder, refreshed while it runs and
# on SIGTERM (preemption, scancel, time limit). A task that starts again (requeued after
# preemption, or resubmitted after a failure) imports that export first, so the tuner reuses
# every trial already measured and resumes the searches that had not spent their budget.
# Submitted by fleet-slurm.sh as a job array (one array index per target); runs by hand too.
set -u
unset CDPATH

usage() {
    cat <<'EOF'
usage: fleet-task.sh --targets LIST --model FILE --shared DIR [options]

One target of the list (the index: --index, else $SLURM_ARRAY_TASK_ID) is tuned:
  mctune tune --model FILE --budget N --db LOCAL/DB [--tier TARGET]
into LOCAL, exported to SHARED/exports/TARGET.jsonl every --checkpoint seconds, on SIGTERM and
at the end (written to a temporary name and renamed, so the file is always a whole export),
and SHARED/exports/TARGET.done is written when tuning finished.

  --targets LIST     comma-separated targets (the same list for every task)
  --index N          which target (default $SLURM_ARRAY_TASK_ID)
  --place KIND       tier: the target is an ISA tier, tuned with `mctune tune --tier TARGET`
                     (several tiers of one machine); partition, constraint or pool: the target
                     is a Slurm partition, node feature or Kubernetes node pool the task was
                     placed on, tuned for the CPU it runs on (default tier)
  --model FILE       model file (models/*.json), readable on the node
  --budget N         samples per workload (default 32)
  --threads N        kernel threads (default 1)
  --min-time S       passed to mctune tune --min-time
  --tune-args 'ARGS' more options for mctune tune
  --shared DIR       shared folder (exports, done markers)
  --local DIR        node-local folder for the database (default $SLURM_TMPDIR, $TMPDIR, /tmp)
  --mctune PATH      the mctune binary (default: mctune on PATH)
  --checkpoint S     seconds between exports while tuning (default 60)
  --dry-run          print what would be done, do nothing
Exit status: 0 when the target is tuned (or was already), 143 after SIGTERM (the export holds
what was done), the tuner's status when it failed.
EOF
}

die() { echo "fleet-task: $*" >&2; exit 2; }
log() { echo "fleet-task[${target:-?}]: $*"; }

targets="" index=${SLURM_ARRAY_TASK_ID:-} place=tier model="" budget=32 threads=1 min_time=""
tune_args="" shared="" local_dir=${SLURM_TMPDIR:-${TMPDIR:-/tmp}} mctune=mctune checkpoint=60
dry=0
while [ $# -gt 0 ]; do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --targets) targets=${2-}; shift 2 ;;
    --index) index=${2-}; shift 2 ;;
    --place) place=${2-}; shift 2 ;;
    --model) model=${2-}; shift 2 ;;
    --budget) budget=${2-}; shift 2 ;;
    --threads) threads=${2-}; shift 2 ;;
    --min-time) min_time=${2-}; shift 2 ;;
    --tune-args) tune_args=${2-}; shift 2 ;;
    --shared) shared=${2-}; shift 2 ;;
    --local) local_dir=${2-}; shift 2 ;;
    --mctune) mctune=${2-}; shift 2 ;;
    --checkpoint) checkpoint=${2-}; shift 2 ;;
    --dry-run) dry=1; shift ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$targets" ] || die "--targets LIST is required (see --help)"
[ -n "$model" ] || die "--model FILE is required"
[ -n "$shared" ] || die "--shared DIR is required"
case $index in ''|*[!0-9]*) die "no array index: give --index N or run as a Slurm array task" ;; esac
case $place in tier|partition|constraint|pool) ;; *) die "--place '$place': use tier, partition, constraint or pool" ;; esac
case $budget in ''|*[!0-9]*|0) die "--budget '$budget' must be a positive integer" ;; esac
case $checkpoint in ''|*[!0-9]*|0) die "--checkpoint '$checkpoint' must be a positive number of seconds" ;; esac
IFS=, read -r -a tlist <<<"$targets"
[ "$index" -lt "${#tlist[@]}" ] || die "index $index is outside the ${#tlist[@]} targets '$targets'"
target=${tlist[$index]}
case $target in ''|*[!A-Za-z0-9._+-]*) die "target '$target' is not a plain name (letters, digits, . _ + -)" ;; esac

exports=$shared/exports
export_file=$exports/$target.jsonl
done_file=$exports/$target.done
ldb=$local_dir/mctune-fleet-$target-${SLURM_JOB_ID:-$$}.db
[ $dry = 1 ] && ldb=$local_dir/mctune-fleet-$target-${SLURM_JOB_ID:-JOBID}.db
tune=("$mctune" tune --model "$model" --budget "$budget" --threads "$threads" --db "$ldb")
[ "$place" = tier ] && tune+=(--tier "$target")
[ -n "$min_time" ] && tune+=(--min-time "$min_time")
# shellcheck disable=SC2206
[ -n "$tune_args" ] && tune+=($tune_args)

if [ $dry = 1 ]; then
    echo "fleet-task: target $index of $targets: $target (place $place)"
    [ -f "$done_file" ] && echo "  already done ($done_file); would exit 0"
    echo "  mkdir -p $exports; rm -rf $ldb"
    echo "  [ -f $export_file ] && $mctune db import $export_file --db $ldb   # resume"
    echo "  ${tune[*]}   # exported every ${checkpoint}s and on SIGTERM:"
    echo "  $mctune db export --db $ldb > $export_file.tmp && mv $export_file.tmp $export_file"
    echo "  then $done_file; rm -rf $ldb"
    exit 0
fi

command -v "$mctune" >/dev/null 2>&1 || die "mctune binary '$mctune' not found (--mctune PATH)"
[ -r "$model" ] || die "model file '$model' is not readable on $(hostname)"
mkdir -p "$exports" || die "cannot create '$exports'"
mkdir -p "$local_dir" || die "cannot create the local folder '$local_dir'"

log "task $index of ${#tlist[@]} on $(hostname), job ${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-none}}_${SLURM_ARRAY_TASK_ID:-$index}, restart ${SLURM_RESTART_COUNT:-0}"
if [ -f "$done_file" ]; then
    log "already tuned ($(cat "$done_file")); nothing to do"
    exit 0
fi

tpid=""
cleanup() { rm -rf "$ldb"; }
trap cleanup EXIT

# Writes the export under a temporary name and renames it: readers see the old whole file or the
# new whole file, never a part.
export_now() {
    local tmp=$export_file.tmp.$$ n
    if "$mctune" db export --db "$ldb" >"$tmp" 2>"$tmp.err" && mv -f "$tmp" "$export_file"; then
        n=$(grep -c '"type":"trial"' "$export_file")
        log "exported $(sed -n 's/.*exported \([0-9]*\) records.*/\1/p' "$tmp.err") records ($n trials) to $export_file ($1)"
        rm -f "$tmp.err"
        return 0
    fi
    log "export failed: $(cat "$tmp.err" 2>/dev/null)"
    rm -f "$tmp" "$tmp.err"
    return 1
}

on_term() {
    trap '' TERM INT
    log "SIGTERM: stopping the tuner, saving what it measured"
    [ -n "$tpid" ] && kill -TERM "$tpid" 2>/dev/null
    [ -n "$tpid" ] && wait "$tpid" 2>/dev/null
    export_now "after SIGTERM"
    exit 143
}
trap on_term TERM INT

rm -rf "$ldb"
if [ -f "$export_file" ]; then
    if out=$("$mctune" db import "$export_file" --db "$ldb" 2>&1); then
        log "resuming from $export_file: $(echo "$out" | tail -1)"
    else
        aside=$export_file.refused.$(date +%s)
        mv -f "$export_file" "$aside"
        log "the export $export_file was refused ($(echo "$out" | tail -1)); moved to $aside; starting this target afresh"
        rm -rf "$ldb"
    fi
fi

log "${tune[*]}"
"${tune[@]}" &
tpid=$!
last=$(date +%s)
while kill -0 "$tpid" 2>/dev/null; do
    sleep 1 &
    wait $! 2>/dev/null
    now=$(date +%s)
    if [ $((now - last)) -ge "$checkpoint" ] && kill -0 "$tpid" 2>/dev/null; then
        export_now "checkpoint" || true
        last=$now
    fi
done
wait "$tpid"
rc=$?
tpid=""
if [ $rc -ne 0 ]; then
    log "mctune tune failed with status $rc; saving what it measured"
    export_now "after failure" || true
    exit $rc
fi
export_now "final" || exit 1
cpus=$(grep '"type":"cpu"' "$export_file" | sed -n 's/.*"key":"\([0-9a-f]*\)".*"tier":"\([^"]*\)".*/\1 (\2)/p' | tr '\n' ' ')
best=$(grep -c '"type":"best"' "$export_file")
trials=$(grep -c '"type":"trial"' "$export_file")
echo "target=$target cpu=${cpus% } best=$best trials=$trials host=$(hostname) restarts=${SLURM_RESTART_COUNT:-0}" >"$done_file.tmp" &&
    mv -f "$done_file.tmp" "$done_file" || die "cannot write '$done_file'"
log "done: $(cat "$done_file")"
