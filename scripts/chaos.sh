#!/usr/bin/env bash
# Chaos run of the real podvisor binary on the real engine (`make chaos`):
#
#  1. crash safety: 30 pods converge while podvisor is SIGKILLed at 20
#     random moments (each run lives 0-1.5 s); then every pod has exactly
#     its infra and app containers, running, never restarted (attempt 0,
#     restartCount 0), and a container of ANOTHER node (same k8s labels and
#     name pattern, other podvisor.io/node) is untouched;
#  2. churn: 500 random operations on the manifest files (add, edit env or
#     args, break with garbage, delete) with podvisor running; then every
#     file is deleted and, once podvisor has converged: no container of this
#     node left, no volume directory under --root-dir/pods, no mount under
#     --root-dir, and podvisor's RSS (VmRSS) at most 10% above its value
#     after the first converge (a lower value is fine).
#
# The random choices come from CHAOS_SEED (printed; default: fixed), so a
# failing run can be replayed. Everything lives under a temp dir with its own
# --node-name and --root-dir; this node's containers are removed at the end.
# Exits non-zero naming the failed check; bounded (every wait has a limit).
#
# usage: chaos.sh   (env: CHAOS_SEED, CHAOS_OPS=500, CHAOS_PODS=30, CHAOS_KILLS=20,
#                   CHAOS_ROUNDS=1: churn rounds, each ending with every file
#                   deleted; RSS is read after each, the last one is checked)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

seed="${CHAOS_SEED:-20261130}"
ops="${CHAOS_OPS:-500}"
npods="${CHAOS_PODS:-30}"
kills="${CHAOS_KILLS:-20}"
rounds="${CHAOS_ROUNDS:-1}"
slots=$((npods + 10))     # file names the churn picks from
ncont=$((2 * npods))      # an infra and an app container per pod
converge_limit=180        # seconds for any convergence
settle=30                 # seconds before an RSS reading: past the watch
                          # history's 15 s and a relist (10 s)
repo="$(cd "$here/.." && pwd)"

need cargo
need docker
need curl
envlines="$("$here/ensure-env.sh")" || die "no Docker engine (scripts/ensure-env.sh failed)"
eval "$envlines"
busybox="$PODVISOR_BUSYBOX_IMAGE"
pause="$PODVISOR_PAUSE_IMAGE"

log "building podvisor (release)"
(cd "$repo" && cargo build --release --bin podvisor >&2) || die "cargo build failed"
bin="${CARGO_TARGET_DIR:-$repo/target}/release/podvisor"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || die "no podvisor binary at $bin"

work="$(mktemp -d /tmp/podvisor-chaos.XXXXXX)"
manifests="$work/manifests"
root="$work/root"
plog="$work/podvisor.log"
mkdir -p "$manifests" "$root"
suffix="$(printf '%s' "${work##*.}" | tr 'A-Z' 'a-z' | tr -dc 'a-z0-9')"
node="chaos-${suffix:0:6}"
other_node="chaos-other-${suffix:0:6}"
other_name="k8s_app_pod-00_default_other-${suffix:0:6}_0"
port=$((20000 + $$ % 20000))
while [ "$(http_code "http://127.0.0.1:$port/")" != 000 ]; do port=$((port + 1)); done
secure_port=$((port + 1))
while [ "$(http_code "http://127.0.0.1:$secure_port/")" != 000 ]; do secure_port=$((secure_port + 1)); done
pv_pid=""
other_id=""
ok=0
start_time=$SECONDS

# --- helpers -----------------------------------------------------------------

fail() {
  printf '[podvisor-scripts] CHAOS FAILED: %s\n' "$*" >&2
  if [ -f "$plog" ]; then
    echo "--- podvisor log (last 40 lines of $plog) ---" >&2
    tail -n 40 "$plog" >&2 || true
  fi
  exit 1
}

# Our containers: "ID NAME STATE POD DOCKER-TYPE RESTART-COUNT" per line.
node_rows() {
  docker ps -a --no-trunc --filter "label=podvisor.io/node=$node" --format \
    '{{.ID}} {{.Names}} {{.State}} {{.Label "io.kubernetes.pod.name"}} {{.Label "io.kubernetes.docker.type"}} {{.Label "io.kubernetes.container.restartCount"}}'
}

start_podvisor() {
  NO_COLOR=1 "$bin" run --pod-manifest-path "$manifests" --node-name "$node" --root-dir "$root" \
    --pod-infra-container-image "$pause" --docker-endpoint "$DOCKER_HOST" \
    --read-only-port "$port" --port "$secure_port" >>"$plog" 2>&1 &
  pv_pid=$!
}

stop_podvisor() { # SIGTERM: leaves the pods running
  [ -n "$pv_pid" ] || return 0
  kill -TERM "$pv_pid" 2>/dev/null || true
  local i
  for i in $(seq 50); do kill -0 "$pv_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pv_pid" 2>/dev/null || true
  wait "$pv_pid" 2>/dev/null || true
  pv_pid=""
}

podvisor_alive() { [ -n "$pv_pid" ] && kill -0 "$pv_pid" 2>/dev/null; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pv_pid/status"; }

mounts_under_root() { awk -v r="$root" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }

cleanup() {
  local status=$?
  stop_podvisor
  local ids
  ids="$(docker ps -aq --filter "label=podvisor.io/node=$node" 2>/dev/null || true)"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  [ -z "$other_id" ] || docker rm -f "$other_id" >/dev/null 2>&1 || true
  local m
  for m in $(mounts_under_root | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  if [ "$ok" = 1 ]; then
    rm -rf "$work"
  else
    log "kept $work (podvisor.log, manifests) for a look; this node's containers are removed"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A pod manifest: pod NAME, generation GEN (env value), sleep SECONDS (args).
# Every third pod has a tmpfs (medium Memory) emptyDir, every third+1 a disk one.
pod_yaml() {
  local i=$1 gen=$2 secs=$3
  local name
  name="$(printf 'pod-%02d' "$i")"
  local vol="" mount=""
  case $((i % 3)) in
    0) vol=$'\n  volumes:\n    - name: scratch\n      emptyDir: {medium: Memory, sizeLimit: 8Mi}'
       mount=$'\n      volumeMounts: [{name: scratch, mountPath: /scratch}]' ;;
    1) vol=$'\n  volumes:\n    - name: scratch\n      emptyDir: {}'
       mount=$'\n      volumeMounts: [{name: scratch, mountPath: /scratch}]' ;;
  esac
  cat <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $name
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: $busybox
      imagePullPolicy: Never
      command: [sleep]
      args: ["$secs"]
      env:
        - {name: CHAOS_GEN, value: "$gen"}$mount$vol
YAML
}

file_of() { printf '%s/pod-%02d.yaml' "$manifests" "$1"; }

write_atomic() { # write_atomic FILE < content: no half-written file is ever read
  local tmp
  tmp="$(dirname "$1")/.tmp.$(basename "$1")"
  cat >"$tmp"
  mv -f "$tmp" "$1"
}

# Waits until predicate $1 holds for 3 s in a row; fails after $converge_limit s.
wait_for() {
  local what=$1 pred=$2 deadline=$((SECONDS + converge_limit)) held=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    podvisor_alive || fail "podvisor (pid $pv_pid) died while waiting for $what"
    if "$pred"; then
      held=$((held + 1))
      [ "$held" -lt 6 ] || return 0
    else
      held=0
    fi
    sleep 0.5
  done
  fail "$what: not reached within ${converge_limit}s; containers of $node:
$(node_rows)"
}

# Every pod-NN of the first $npods has 2 running containers, nothing else exists.
all_pods_running() {
  local rows
  rows="$(node_rows)"
  [ "$(grep -c . <<<"$rows")" -eq $ncont ] || return 1
  [ "$(awk '$3 == "running"' <<<"$rows" | grep -c .)" -eq $ncont ] || return 1
  [ "$(awk '{ print $4 }' <<<"$rows" | sort -u | grep -c .)" -eq "$npods" ]
}

no_containers() { [ -z "$(node_rows)" ]; }

# --- the other owner's container ---------------------------------------------

log "seed $seed (CHAOS_SEED=$seed replays this run); node $node; work dir $work"
RANDOM=$seed
docker rm -f "$other_name" >/dev/null 2>&1 || true
other_id="$(docker run -d --name "$other_name" \
  --label "podvisor.io/node=$other_node" \
  --label io.kubernetes.pod.name=pod-00 --label io.kubernetes.pod.namespace=default \
  --label "io.kubernetes.pod.uid=other-${suffix:0:6}" --label io.kubernetes.container.name=app \
  --label io.kubernetes.docker.type=container --label io.kubernetes.container.restartCount=0 \
  "$busybox" sleep 3600)" || die "docker run of the other node's container failed"
log "the other node's container: $other_name ${other_id:0:12}"

# --- 1. SIGKILL while converging ---------------------------------------------

for i in $(seq 0 $((npods - 1))); do pod_yaml "$i" 0 3600 | write_atomic "$(file_of "$i")"; done
declare -a present gen
for i in $(seq 0 $((slots - 1))); do present[i]=$((i < npods ? 1 : 0)); gen[i]=0; done

log "phase 1: $npods pods, podvisor SIGKILLed $kills times at random moments (0-1.5 s)"
t1=$SECONDS
kill_times=()
for k in $(seq "$kills"); do
  start_podvisor
  ms=$((RANDOM % 1501))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -KILL "$pv_pid" 2>/dev/null || true
  wait "$pv_pid" 2>/dev/null || true
  pv_pid=""
  kill_times+=("$ms")
done
log "killed at (ms after start): ${kill_times[*]}; containers so far: $(node_rows | grep -c . || true)"
start_podvisor
wait_for "phase 1: $npods pods with 2 running containers each" all_pods_running
converge1=$((SECONDS - t1))

rows="$(node_rows)"
bad="$(awk '$3 != "running" || ($6 != "" && $6 != "0") || $2 !~ /_0$/' <<<"$rows")"
[ -z "$bad" ] || fail "phase 1: containers dead, restarted or of attempt > 0:
$bad"
per_pod="$(awk '{ n[$4]++; t[$4] = t[$4] " " $5 } END { for (p in n) if (n[p] != 2 || t[p] !~ /podsandbox/ || t[p] !~ / container/) print p, n[p], t[p] }' <<<"$rows")"
[ -z "$per_pod" ] || fail "phase 1: pods without exactly one infra + one app container:
$per_pod"
[ "$(docker inspect -f '{{.Id}} {{.State.Running}} {{.RestartCount}}' "$other_name" 2>/dev/null)" = "$other_id true 0" ] ||
  fail "phase 1: the other node's container $other_name was touched: $(docker inspect -f '{{.Id}} {{.State.Status}}' "$other_name" 2>&1)"
log "phase 1 ok: $npods pods, $ncont containers running, attempt 0, converged ${converge1}s after the first start; other node's container untouched"

sleep "$settle"
rss0="$(rss_kb)"
log "podvisor RSS after the first converge (+${settle}s): ${rss0} kB"

# --- 2. churn ----------------------------------------------------------------

declare -A done_ops=([add]=0 [edit]=0 [break]=0 [delete]=0)
rss_after=()
churn_s=0
converge2=0
for round in $(seq "$rounds"); do
  log "phase 2, round $round/$rounds: $ops random operations on $slots manifest files"
  t2=$SECONDS
  for n in $(seq "$ops"); do
    podvisor_alive || fail "phase 2: podvisor died during the churn (round $round, operation $n)"
    i=$((RANDOM % slots))
    f="$(file_of "$i")"
    if [ "${present[i]}" = 0 ]; then
      op=add
    else
      case $((RANDOM % 10)) in
        0|1|2|3) op=edit ;;
        4|5) op=break ;;
        *) op=delete ;;
      esac
    fi
    case "$op" in
      add|edit)
        gen[i]=$((gen[i] + 1))
        secs=3600
        [ $((RANDOM % 2)) = 0 ] || secs=$((3600 + RANDOM % 100))
        pod_yaml "$i" "${gen[i]}" "$secs" | write_atomic "$f"
        present[i]=1 ;;
      break)
        case $((RANDOM % 3)) in
          0) printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: [\n' ;;
          1) printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: BAD_%s}\nspec: {containers: []}\n' "$n" ;;
          *) head -c 300 /dev/urandom | tr -dc 'a-z:{}[] \n-' ;;
        esac | write_atomic "$f" ;;
      delete)
        rm -f "$f"
        present[i]=0 ;;
    esac
    done_ops[$op]=$((done_ops[$op] + 1))
    ms=$((RANDOM % 400))
    sleep "0.$(printf '%03d' "$ms")"
  done
  round_s=$((SECONDS - t2))
  churn_s=$((churn_s + round_s))
  log "churn done in ${round_s}s; containers now: $(node_rows | grep -c . || true)"

  rm -f "$manifests"/*.yaml "$manifests"/.tmp.* 2>/dev/null || true
  for i in $(seq 0 $((slots - 1))); do present[i]=0; done
  t3=$SECONDS
  wait_for "phase 2: every container of $node removed after all files were deleted" no_containers
  converge2=$((SECONDS - t3))

  leaked_dirs="$(find "$root/pods" -mindepth 1 -maxdepth 1 2>/dev/null || true)"
  [ -z "$leaked_dirs" ] || fail "phase 2: leaked pod directories under $root/pods:
$leaked_dirs"
  leaked_mounts="$(mounts_under_root)"
  [ -z "$leaked_mounts" ] || fail "phase 2: leaked mounts under $root:
$leaked_mounts"
  [ "$(docker inspect -f '{{.Id}} {{.State.Running}} {{.RestartCount}}' "$other_name" 2>/dev/null)" = "$other_id true 0" ] ||
    fail "phase 2: the other node's container $other_name was touched"

  sleep "$settle"
  rss_after+=("$(rss_kb)")
  log "round $round: no container, pod dir or mount left after ${converge2}s; podvisor RSS ${rss_after[-1]} kB"
done

rss1="${rss_after[-1]}"
limit=$((rss0 + rss0 / 10))
pct=$(((rss1 - rss0) * 100 / rss0))
[ "$rss1" -le "$limit" ] || fail "phase 2: podvisor RSS grew from ${rss0} kB after the first converge to ${rss1} kB (+${pct}%, limit +10% = ${limit} kB); after each round: ${rss_after[*]} kB"

ok=1
cat >&2 <<SUMMARY
[podvisor-scripts] chaos summary (seed $seed, node $node, $((SECONDS - start_time))s):
  phase 1: $kills SIGKILLs, $npods pods converged in ${converge1}s: $ncont containers running, attempt 0, restartCount 0
  phase 2: $rounds x $ops operations (add ${done_ops[add]}, edit ${done_ops[edit]}, break ${done_ops[break]}, delete ${done_ops[delete]}) in ${churn_s}s;
           all files deleted: no container left after ${converge2}s, no pod dir, no mount under the root dir
  other node's container ${other_id:0:12}: untouched, running
  podvisor RSS: ${rss0} kB after the first converge, ${rss_after[*]} kB after each round (${pct}%, limit +10%)
chaos: all checks passed
SUMMARY
