#!/bin/bash
# Kubernetes variant of the fleet, for clusters without Slurm: prints the manifests of the
# tuning Jobs (Indexed Jobs running scripts/fleet/fleet-task.sh, the index choosing the target)
# and of the merge Job (scripts/fleet/fleet-merge.sh), all sharing one ReadWriteMany volume.
# Kubernetes has no job dependencies: apply the tuning Jobs, `kubectl wait` for them, then
# apply the merge Job (render.sh --help shows the commands).
set -u

usage() {
    cat <<'EOF'
usage: render.sh tune|merge --targets LIST --image IMAGE --pvc CLAIM [options] > FILE.yaml

tune    the tuning Jobs. --place pool (default): one Indexed Job per target, pinned to that node
        pool by nodeSelector (LABEL=TARGET); a Job has one pod template, hence one Job per pool.
        --place tier: one Indexed Job with one index per target (ISA tiers of one pool, tuned
        with `mctune tune --tier`), on --pool if given.
merge   the follow-up Job: imports every export, reports conflicts, writes the library.

  --targets LIST      comma-separated node pools (or tiers with --place tier)
  --image IMAGE       an image with mctune on PATH and this repository's scripts/ in /opt/mctune
  --pvc CLAIM         a ReadWriteMany PersistentVolumeClaim, mounted at /fleet (the shared folder)
  --model PATH        model file inside the image (default /opt/mctune/models/llama-3-8b.json)
  --budget N          samples per workload (default 32)
  --threads N         kernel threads and CPU request per pod (default 1)
  --pool-label KEY    node label that names the pool (default mctune.io/cpu)
  --pool NAME         with --place tier: the pool to run on
  --name NAME         job name prefix (default mctune-fleet); --namespace NS (default default)
  --lib NAME          library name of the merge (default mctfleet)

Run:
  render.sh tune  --targets icelake,sapphirerapids,genoa --image REG/mctune:1 --pvc fleet > tune.yaml
  render.sh merge --targets icelake,sapphirerapids,genoa --image REG/mctune:1 --pvc fleet > merge.yaml
  kubectl apply -f tune.yaml
  kubectl wait --for=condition=complete --timeout=24h -l mctune.io/fleet=mctune-fleet job
  kubectl apply -f merge.yaml && kubectl wait --for=condition=complete job/mctune-fleet-merge
A pod that fails or is evicted is retried (backoffLimit) and resumes from its export on /fleet.
EOF
}

die() { echo "render.sh: $*" >&2; exit 2; }

what=${1:-}
case $what in -h|--help) usage; exit 0 ;; tune|merge) shift ;; *) usage >&2; exit 2 ;; esac
targets="" image="" pvc="" model=/opt/mctune/models/llama-3-8b.json budget=32 threads=1
label=mctune.io/cpu pool="" name=mctune-fleet ns=default place=pool lib=mctfleet
while [ $# -gt 0 ]; do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --targets) targets=${2-}; shift 2 ;;
    --image) image=${2-}; shift 2 ;;
    --pvc) pvc=${2-}; shift 2 ;;
    --model) model=${2-}; shift 2 ;;
    --budget) budget=${2-}; shift 2 ;;
    --threads) threads=${2-}; shift 2 ;;
    --pool-label) label=${2-}; shift 2 ;;
    --pool) pool=${2-}; shift 2 ;;
    --name) name=${2-}; shift 2 ;;
    --namespace) ns=${2-}; shift 2 ;;
    --place) place=${2-}; shift 2 ;;
    --lib) lib=${2-}; shift 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$targets" ] || die "--targets LIST is required"
[ -n "$image" ] || die "--image IMAGE is required (an image with mctune and /opt/mctune/scripts)"
[ -n "$pvc" ] || die "--pvc CLAIM is required (a ReadWriteMany volume every pod mounts)"
case $place in pool|tier) ;; *) die "--place '$place': use pool or tier" ;; esac
case $budget in ''|*[!0-9]*|0) die "--budget '$budget' must be a positive integer" ;; esac
case $threads in ''|*[!0-9]*|0) die "--threads '$threads' must be a positive integer" ;; esac
IFS=, read -r -a tlist <<<"$targets"
for t in "${tlist[@]}"; do
    # a DNS-1123 label: Job names are built from it
    case $t in ''|*[!a-z0-9.-]*|[.-]*|*[.-]) die "target '$t' must be lower-case letters, digits, '-' or '.' (a Kubernetes name)" ;; esac
done

volumes() {
    cat <<EOF
      volumes:
      - name: fleet
        persistentVolumeClaim:
          claimName: $pvc
      - name: node-local
        emptyDir: {}
EOF
}

# $1 job name, $2 completions, $3 index expression, $4 fleet-task place, $5 nodeSelector value
tune_job() {
    local job=$1 n=$2 index=$3 tplace=$4 sel=$5
    cat <<EOF
---
apiVersion: batch/v1
kind: Job
metadata:
  name: $job
  namespace: $ns
  labels:
    mctune.io/fleet: $name
    mctune.io/step: tune
spec:
  completionMode: Indexed
  completions: $n
  parallelism: $n
  backoffLimit: $((4 * n))
  template:
    metadata:
      labels:
        mctune.io/fleet: $name
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 60
EOF
    if [ -n "$sel" ]; then
        cat <<EOF
      nodeSelector:
        $label: $sel
EOF
    fi
    cat <<EOF
      containers:
      - name: tune
        image: $image
        command: ["/bin/bash", "-c"]
        args:
        - >-
          exec /opt/mctune/scripts/fleet/fleet-task.sh --index $index
          --targets $targets --place $tplace --model $model --budget $budget --threads $threads
          --shared /fleet --local /node-local --checkpoint 60
        resources:
          requests:
            cpu: "$threads"
          limits:
            cpu: "$threads"
        volumeMounts:
        - name: fleet
          mountPath: /fleet
        - name: node-local
          mountPath: /node-local
EOF
    volumes
}

if [ "$what" = tune ]; then
    echo "# generated by scripts/fleet/k8s/render.sh tune --targets $targets --place $place"
    if [ "$place" = tier ]; then
        # one Indexed Job, one index per tier; $JOB_COMPLETION_INDEX is set by Kubernetes
        tune_job "$name-tune" "${#tlist[@]}" '"$JOB_COMPLETION_INDEX"' tier "$pool"
    else
        for i in "${!tlist[@]}"; do
            tune_job "$name-tune-${tlist[$i]}" 1 "$i" pool "${tlist[$i]}"
        done
    fi
    exit 0
fi

cat <<EOF
# generated by scripts/fleet/k8s/render.sh merge --targets $targets
---
apiVersion: batch/v1
kind: Job
metadata:
  name: $name-merge
  namespace: $ns
  labels:
    mctune.io/fleet-merge: $name
    mctune.io/step: merge
spec:
  completions: 1
  parallelism: 1
  backoffLimit: 2
  template:
    metadata:
      labels:
        mctune.io/fleet-merge: $name
    spec:
      restartPolicy: Never
      containers:
      - name: merge
        image: $image
        command: ["/opt/mctune/scripts/fleet/fleet-merge.sh"]
        args: ["--targets", "$targets", "--shared", "/fleet", "--name", "$lib",
               "--threads", "$threads"]
        volumeMounts:
        - name: fleet
          mountPath: /fleet
EOF
volumes | sed '/node-local/,$d'
