#!/bin/bash
# Tunes a model on a fleet through Slurm: one array task per target (fleet-task.sh), then one
# job that depends on all of them (--dependency=afterok) and merges their exports into one
# database and one kernel library (fleet-merge.sh). Everything the jobs share lives in one
# shared folder; run it again with --resume and only the targets that did not finish are
# submitted again, continuing from their exported trials.
set -u
unset CDPATH
here=$(cd "$(dirname "$0")" && pwd -P)

usage() {
    cat <<'EOF'
usage: fleet-slurm.sh --model FILE --targets LIST --shared DIR [options]

Submits (sbatch) one array of tuning tasks, one index per target, and a merge job that runs when
every task succeeded. On a cluster whose CPU types are partitions or node features, each target
is one array index submitted with its own -p or --constraint (Slurm applies one placement per
submission); with --place tier, one array covers every target on one partition, each task tuning
another ISA tier of the same machines (`mctune tune --tier`).

  --model FILE        model file (models/*.json); copied to SHARED/model.json for the nodes
  --targets LIST      comma-separated: tiers (generic,sse4.2,avx2,avx512,...), partitions or
                      node features, per --place
  --place KIND        tier (default), partition or constraint
  --partition P       partition of every task and the merge job (--place tier), else the merge
                      job's partition (default: the cluster's default)
  --budget N          samples per workload (default 32)
  --threads N         kernel threads, also the CPUs per task (default 1)
  --min-time S        mctune tune --min-time (shorter timing per candidate)
  --tune-args 'ARGS'  more options for mctune tune
  --checkpoint S      seconds between exports while a task runs (default 60)
  --shared DIR        folder every node sees: model, exports, logs, merged db, library
  --local DIR         node-local folder for the task databases (default: $SLURM_TMPDIR,
                      $TMPDIR or /tmp on the node)
  --out DIR           library folder (default SHARED/lib); --name NAME (default mctfleet)
  --mctune PATH       mctune binary as the nodes see it (default: mctune on PATH, made absolute)
  --sbatch-args 'A'   more sbatch options for every job (account, QOS, time limit, ...)
  --resume            continue the fleet in SHARED: submit only targets without a finished
                      export, then the merge (the options must match the first run's)
  --wait              wait for the merge job and print its summary; exit 0 only if it succeeded
  --timeout S         with --wait: give up after S seconds (default 3600), cancelling the jobs
  --dry-run           print the sbatch commands and what each job will do; submit nothing

Files in SHARED: exports/TARGET.jsonl (whole exports, refreshed while tuning),
exports/TARGET.done (the task finished), logs/, fleet.db, lib/NAME.{h,c}, merge.summary,
merge.status, fleet.params (the options, checked by --resume).
EOF
}

die() { echo "fleet-slurm: $*" >&2; exit 1; }
log() { echo "fleet-slurm: $*"; }

model="" targets="" place=tier partition="" budget=32 threads=1 min_time="" tune_args=""
checkpoint=60 shared="" local_dir="" out="" name=mctfleet mctune=mctune sbatch_args="" resume=0
wait=0 timeout=3600 dry=0
while [ $# -gt 0 ]; do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --model) model=${2-}; shift 2 ;;
    --targets) targets=${2-}; shift 2 ;;
    --place) place=${2-}; shift 2 ;;
    --partition) partition=${2-}; shift 2 ;;
    --budget) budget=${2-}; shift 2 ;;
    --threads) threads=${2-}; shift 2 ;;
    --min-time) min_time=${2-}; shift 2 ;;
    --tune-args) tune_args=${2-}; shift 2 ;;
    --checkpoint) checkpoint=${2-}; shift 2 ;;
    --shared) shared=${2-}; shift 2 ;;
    --local) local_dir=${2-}; shift 2 ;;
    --out) out=${2-}; shift 2 ;;
    --name) name=${2-}; shift 2 ;;
    --mctune) mctune=${2-}; shift 2 ;;
    --sbatch-args) sbatch_args=${2-}; shift 2 ;;
    --resume) resume=1; shift ;;
    --wait) wait=1; shift ;;
    --timeout) timeout=${2-}; shift 2 ;;
    --dry-run) dry=1; shift ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$model" ] || die "--model FILE is required (see --help)"
[ -n "$targets" ] || die "--targets LIST is required, e.g. --targets generic,avx2,avx512"
[ -n "$shared" ] || die "--shared DIR is required (a folder every node sees)"
[ -r "$model" ] || die "model file '$model' is not readable"
case $place in tier|partition|constraint) ;; *) die "--place '$place': use tier, partition or constraint" ;; esac
case $budget in ''|*[!0-9]*|0) die "--budget '$budget' must be a positive integer" ;; esac
case $threads in ''|*[!0-9]*|0) die "--threads '$threads' must be a positive integer" ;; esac
case $timeout in ''|*[!0-9]*|0) die "--timeout '$timeout' must be a positive number of seconds" ;; esac
case $name in ''|*[!A-Za-z0-9_]*) die "--name '$name' must be a C identifier (letters, digits, _)" ;; esac
IFS=, read -r -a tlist <<<"$targets"
[ ${#tlist[@]} -gt 0 ] || die "--targets '$targets' names no target"
seen=" "
for t in "${tlist[@]}"; do
    case $t in ''|*[!A-Za-z0-9._+-]*) die "target '$t' is not a plain name (letters, digits, . _ + -)" ;; esac
    case $seen in *" $t "*) die "target '$t' is given twice" ;; esac
    seen="$seen$t "
done
if [ "$mctune" = mctune ] || [ "${mctune#/}" = "$mctune" ]; then
    m=$(command -v "$mctune" 2>/dev/null) || { [ $dry = 1 ] && m=$mctune; } ||
        die "mctune binary '$mctune' not found (--mctune PATH)"
    case $m in /*) mctune=$m ;; *) mctune=$(cd "$(dirname "$m")" && pwd -P)/$(basename "$m") ;; esac
fi
if [ $dry = 0 ]; then
    command -v sbatch >/dev/null 2>&1 || die "sbatch not found: this needs a Slurm cluster (Debian: slurm-client; scripts/fleet/slurm-local.sh starts a one-node one)"
    mkdir -p "$shared/exports" "$shared/logs" || die "cannot create '$shared'"
    shared=$(cd "$shared" && pwd -P)
fi
out=${out:-$shared/lib}

# What identifies this fleet; --resume refuses to continue one started with other options.
params="model_sha256=$(sha256sum <"$model" | cut -d' ' -f1) targets=$targets place=$place budget=$budget threads=$threads min_time=$min_time tune_args=$tune_args"
if [ $dry = 0 ]; then
    if [ -f "$shared/fleet.params" ]; then
        if [ $resume = 0 ]; then
            die "'$shared' holds a fleet already (fleet.params); --resume continues it, or give a new --shared folder"
        fi
        old=$(cat "$shared/fleet.params")
        [ "$old" = "$params" ] || die "--resume: the options differ from the first run's:
  first run: $old
  this run:  $params"
    elif [ $resume = 1 ] && [ -n "$(ls -A "$shared/exports")" ]; then
        die "--resume: '$shared' has exports but no fleet.params; not a folder of fleet-slurm.sh"
    fi
    # Two tasks of one target at once would overwrite each other's export.
    if [ -f "$shared/jobs" ]; then
        busy=$(squeue -h -o '%i %j %T' -j "$(tr ' ' ',' <"$shared/jobs")" 2>/dev/null)
        [ -z "$busy" ] || die "jobs of this fleet are still queued or running; wait for them or
scancel them, then run again with --resume:
$busy"
    fi
    echo "$params" >"$shared/fleet.params"
    cp -f "$model" "$shared/model.json.tmp" && mv -f "$shared/model.json.tmp" "$shared/model.json" ||
        die "cannot copy the model into '$shared'"
fi

task_args=(--targets "$targets" --place "$place" --model "$shared/model.json" --budget "$budget"
           --threads "$threads" --shared "$shared" --mctune "$mctune" --checkpoint "$checkpoint")
[ -n "$min_time" ] && task_args+=(--min-time "$min_time")
[ -n "$tune_args" ] && task_args+=(--tune-args "$tune_args")
[ -n "$local_dir" ] && task_args+=(--local "$local_dir")
merge_args=(--targets "$targets" --shared "$shared" --out "$out" --name "$name" --threads "$threads"
            --mctune "$mctune")
# shellcheck disable=SC2206
extra=($sbatch_args)
common=(--parsable "${extra[@]}")

# The indices still to tune
todo=()
for i in "${!tlist[@]}"; do
    if [ $dry = 0 ] && [ -f "$shared/exports/${tlist[$i]}.done" ]; then
        log "target ${tlist[$i]}: finished already ($(cat "$shared/exports/${tlist[$i]}.done"))"
    else
        todo+=("$i")
    fi
done

submit() {   # prints the command, submits it unless --dry-run; the job id goes to $sub_id
    if [ $dry = 1 ]; then
        nsub=$(( ${nsub:-0} + 1 )); sub_id="JOB$nsub"
        echo "[$sub_id] sbatch $*"
        return 0
    fi
    echo "fleet-slurm: sbatch $*" >&2
    sub_id=$(sbatch "$@") || die "sbatch failed: sbatch $*"
    sub_id=${sub_id%%;*}
    case $sub_id in ''|*[!0-9]*) die "sbatch answered '$sub_id', not a job id" ;; esac
}

jobs=()
if [ ${#todo[@]} -gt 0 ]; then
    if [ "$place" = tier ]; then
        list=$(IFS=,; echo "${todo[*]}")
        submit "${common[@]}" --array="$list" ${partition:+-p "$partition"} \
            --cpus-per-task="$threads" --job-name=mctune-tune \
            -o "$shared/logs/tune-%A_%a.out" "$here/fleet-task.sh" "${task_args[@]}"
        jobs+=("$sub_id")
    else
        for i in "${todo[@]}"; do
            t=${tlist[$i]}
            if [ "$place" = partition ]; then where=(-p "$t"); else where=(--constraint="$t"); fi
            submit "${common[@]}" --array="$i" "${where[@]}" --cpus-per-task="$threads" \
                --job-name="mctune-tune-$t" -o "$shared/logs/tune-%A_%a.out" \
                "$here/fleet-task.sh" "${task_args[@]}"
            jobs+=("$sub_id")
        done
    fi
fi
dep=()
if [ ${#jobs[@]} -gt 0 ]; then
    dep=(--dependency="afterok:$(IFS=:; echo "${jobs[*]}")" --kill-on-invalid-dep=yes)
fi
[ $dry = 0 ] && rm -f "$shared/merge.status"
mp=()
[ -n "$partition" ] && mp=(-p "$partition")
submit "${common[@]}" "${dep[@]}" "${mp[@]}" --job-name=mctune-merge \
    -o "$shared/logs/merge-%j.out" "$here/fleet-merge.sh" "${merge_args[@]}"
merge=$sub_id
[ $dry = 0 ] && echo "${jobs[*]} $merge" | sed 's/^ *//' >"$shared/jobs"

if [ $dry = 1 ]; then
    echo "(JOBn: the job id sbatch will answer; nothing was submitted)"
    echo
    for i in "${todo[@]}"; do
        bash "$here/fleet-task.sh" "${task_args[@]}" --index "$i" --dry-run
    done
    bash "$here/fleet-merge.sh" "${merge_args[@]}" --dry-run
    exit 0
fi
log "submitted: ${#todo[@]} tuning tasks (jobs ${jobs[*]:-none}), merge job $merge; logs in $shared/logs"
[ $wait = 1 ] || exit 0

# Waits for the merge job to leave the queue (no accounting needed: the merge writes its
# status into the shared folder).
start=$(date +%s)
while squeue -h -j "$merge" -o %i 2>/dev/null | grep -q .; do
    if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
        scancel "${jobs[@]}" "$merge" 2>/dev/null
        die "timed out after ${timeout}s; cancelled jobs ${jobs[*]} $merge; see $shared/logs"
    fi
    sleep 1
done
if [ "$(cat "$shared/merge.status" 2>/dev/null)" != 0 ]; then
    for i in "${todo[@]}"; do
        t=${tlist[$i]}
        if [ ! -f "$shared/exports/$t.done" ]; then
            echo "fleet-slurm: target $t did not finish; the end of its log:" >&2
            tail -5 "$shared"/logs/tune-*_"$i".out 2>/dev/null | sed 's/^/    /' >&2
        fi
    done
    die "the merge job $merge did not succeed (a task failed or was cancelled; run again with --resume); logs in $shared/logs"
fi
log "merge job $merge done in $(( $(date +%s) - start ))s:"
sed 's/^/  /' "$shared/merge.summary"
